"""apt's own words (fwsetup.backends.apt_messages): the lines `apt-get install --simulate` prints."""

from __future__ import annotations

from fwsetup.backends.apt_messages import AptChange, simulated_changes

# apt-get --simulate install python3-caffe in a Debian 11 image (apt 2.2): a new package, an upgrade (its
# installed version in brackets), then the configure line, which is not a change of its own
SIMULATION = """NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
      Keep also in mind that locking is deactivated,
      so don't depend on the relevance to the real current situation!
Inst libcaffe1 (1.0.0+git20180821.99bd997-8+b2 Debian:11.11/oldoldstable [amd64])
Inst python3-numpy [1:1.19.4-1] (1:1.19.5-1 Debian:11.11/oldoldstable [amd64])
Conf libcaffe1 (1.0.0+git20180821.99bd997-8+b2 Debian:11.11/oldoldstable [amd64])
Conf python3-numpy (1:1.19.5-1 Debian:11.11/oldoldstable [amd64])
"""


def test_inst_lines_are_the_changes_with_the_version_an_upgrade_replaces() -> None:
    assert simulated_changes(SIMULATION) == [
        AptChange(package="libcaffe1", version="1.0.0+git20180821.99bd997-8+b2"),
        AptChange(package="python3-numpy", version="1:1.19.5-1", replaces="1:1.19.4-1"),
    ]


def test_nothing_to_do_is_no_change() -> None:
    assert simulated_changes("NOTE: This is only a simulation!\n") == []
