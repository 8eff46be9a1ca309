"""Issue 9, item 4: index credentials never reach uv's command line: pip's settings carried to uv
(pipconfig.to_uv) put credentials in the environment only."""

from __future__ import annotations

import json
import os

from index_secrets import EXTRA, INDEX, TOKEN, clean_pip_env

from fwsetup import pipconfig

# `clean_pip_env` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["clean_pip_env"]


LINKS = f"https://{TOKEN}y@wheels.example/links/"


def test_to_uv_puts_credentials_in_the_environment_only() -> None:
    settings = pipconfig.read_pip_settings(
        {
            "PIP_INDEX_URL": INDEX,
            "PIP_EXTRA_INDEX_URL": EXTRA,
            "PIP_FIND_LINKS": LINKS,
            "PIP_CONFIG_FILE": os.devnull,
        }
    )
    cfg = pipconfig.to_uv(settings, env={})
    assert not any(TOKEN in a for a in cfg.args)
    assert (
        "--index-url" not in cfg.args
        and "--extra-index-url" not in cfg.args
        and "--find-links" not in cfg.args
    )
    assert cfg.env["UV_INDEX_URL"] == INDEX
    assert cfg.env["UV_EXTRA_INDEX_URL"] == EXTRA
    assert cfg.env["UV_FIND_LINKS"] == LINKS
    assert "--index-strategy" in cfg.args  # the flags without a URL stay
    shown = json.dumps([cfg.index_urls, cfg.find_links, cfg.warnings])
    assert TOKEN not in shown and "***@mirror.example" in shown
    assert TOKEN in cfg.secrets


def test_to_uv_keeps_one_option_in_one_place() -> None:
    # a flag hides uv's variable: the extra indexes go all to UV_EXTRA_INDEX_URL when one has a credential
    plain = "https://plain.example/simple"
    settings = pipconfig.read_pip_settings(
        {"PIP_EXTRA_INDEX_URL": f"{plain} {EXTRA}", "PIP_CONFIG_FILE": os.devnull}
    )
    cfg = pipconfig.to_uv(settings, plan_indexes=["https://download.example/whl/cpu"], env={})
    assert cfg.env["UV_EXTRA_INDEX_URL"].split() == ["https://download.example/whl/cpu", plain, EXTRA]
    assert "--extra-index-url" not in cfg.args and not any(TOKEN in a for a in cfg.args)
    # without credentials nothing changes: the URLs stay on the command line, where the log shows them
    settings = pipconfig.read_pip_settings({"PIP_INDEX_URL": plain, "PIP_CONFIG_FILE": os.devnull})
    cfg = pipconfig.to_uv(settings, env={})
    assert cfg.args[cfg.args.index("--index-url") + 1] == plain and "UV_INDEX_URL" not in cfg.env
