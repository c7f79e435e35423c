"""``ratekeeper proxy``: a real process in front of a real upstream, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TYPE_CHECKING

import httpx
from click.testing import CliRunner
from gateway_servers import EXAMPLES
from upstream import DOWNLOAD

from ratekeeper.cli import main
from support.asgi_server import free_port

if TYPE_CHECKING:
    from upstream import TestUpstream

STARTER = {"X-API-Key": "demo-starter"}


async def _line(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), 20)).decode()


async def test_proxy_serves_every_path_says_it_has_no_admin_and_stops_gracefully(
    upstream: tuple[str, TestUpstream],
) -> None:
    url, app = upstream
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from ratekeeper.cli import main; main()",
        "proxy", "--upstream", url, "--policy", str(EXAMPLES / "flowcms.yaml"),
        "--port", str(port), "--registry", "none",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        lines = [await _line(process.stdout)]
        while not lines[-1].startswith("  admin"):
            lines.append(await _line(process.stdout))
        assert f"ratekeeper proxy: listening on http://127.0.0.1:{port}\n" in lines
        assert lines[-1] == (
            "  admin          none: this proxy serves no admin API, metrics or dashboard "
            "(--admin-port N serves them)\n"
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            echoed = await client.get("/api/echo/any/path?x=1", headers=STARTER)
            assert echoed.status_code == 200
            assert echoed.json()["target"] == "/api/echo/any/path?x=1"
            assert echoed.headers["x-ratelimit-limit"] == "60"
            assert echoed.headers["x-ratelimit-remaining"] == "59"

            request = client.build_request("GET", "/api/download?id=g", headers=STARTER)
            streaming = await client.send(request, stream=True)
            chunks = streaming.aiter_raw()
            assert await anext(chunks) == DOWNLOAD[0]
            process.send_signal(signal.SIGTERM)  # a response is still streaming
            await asyncio.sleep(0.2)
            app.release("g")
            assert [chunk async for chunk in chunks] == [DOWNLOAD[1]]  # it finishes
            await streaming.aclose()
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_an_upstream_that_is_not_an_http_url_is_refused() -> None:
    result = CliRunner().invoke(
        main,
        ["proxy", "--upstream", "ftp://example.org", "--policy", str(EXAMPLES / "flowcms.yaml")],
    )
    assert result.exit_code == 2
    assert "the upstream must be an http:// or https:// URL, got 'ftp://example.org'" in (
        result.output
    )


def test_proxy_help_lists_its_options() -> None:
    result = CliRunner().invoke(main, ["proxy", "--help"])
    assert result.exit_code == 0
    for option in ("--upstream", "--policy", "--store", "--registry", "--host", "--port",
                   "--timeout", "--admin-port"):  # fmt: skip
        assert option in result.output
