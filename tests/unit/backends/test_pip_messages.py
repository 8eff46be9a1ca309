"""pip's own words (fwsetup.backends.pip_messages): one test per form the adapter reads, each with a message
pip printed, named by where it was seen."""

from __future__ import annotations

from fwsetup.backends import pip_messages

# pip's resolver (src/pip/_internal/resolution/resolvelib/factory.py: DistributionNotFound)
NO_DISTRIBUTION = """ERROR: Could not find a version that satisfies the requirement torch==9.9 (from versions: none)
ERROR: No matching distribution found for torch==9.9
"""
# pypa/packaging-problems#187 (urllib3's NewConnectionError as pip reports it)
NO_CONNECTION = """Could not fetch URL https://pypi.org/simple/pip/: connection error: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with url: /simple/pip/
(Caused by NewConnectionError('<pip._vendor.urllib3.connection.VerifiedHTTPSConnection object at 0x02A937F0>: Failed to establish a new connection: [Errno 11004] getaddrinfo failed')) - skipping
"""


def test_no_matching_distribution_names_the_requirement() -> None:
    assert pip_messages.read_failure(NO_DISTRIBUTION) == pip_messages.PipFailure(
        "no_distribution", "torch==9.9"
    )


def test_a_failed_connection_is_network_and_names_the_url() -> None:
    got = pip_messages.read_failure(NO_CONNECTION)
    assert got.code == "network"
    assert got.detail == "Failed to establish a new connection"
    assert got.url is not None and got.url.startswith("https://pypi.org/simple/pip/")


def test_a_tls_failure_is_network() -> None:
    # ssl's error through urllib3, as pip retries it (pip's "Retrying (Retry(total=4, ...))" warning)
    text = (
        "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection "
        "broken by 'SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
        "failed: unable to get local issuer certificate (_ssl.c:1006)'))': /simple/torch/\n"
    )
    got = pip_messages.read_failure(text)
    assert got.code == "network" and got.detail == "certificate verify failed"


def test_another_error_is_pips_error_line() -> None:
    text = "Collecting torch\nERROR: Could not install packages due to an OSError: [Errno 28] No space left on device\n"
    got = pip_messages.read_failure(text)
    assert got == pip_messages.PipFailure(
        "error", "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"
    )


def test_pips_installing_line_starts_the_install() -> None:
    assert pip_messages.is_installing_line("Installing collected packages: numpy, torch")
    assert not pip_messages.is_installing_line("Collecting torch")
