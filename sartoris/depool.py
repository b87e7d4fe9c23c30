"""Run the operator's depool/pool command on the deploy host, once per host, bounded in time.

The command template was split like a shell at config load; `{host}` is substituted into single
arguments and the result is exec'd directly, so no shell ever sees a host name.
"""

from __future__ import annotations

import asyncio

from sartoris.config import expand_command


async def run_pool_command(template: tuple[str, ...], host: str, timeout: float) -> str | None:
    """Run the command for `host`; None on success, else a one-line reason (a failure is data, not fatal)."""
    argv = expand_command(template, host)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        return f"{argv[0]}: {exc.strerror or exc}"
    try:
        async with asyncio.timeout(timeout):
            _, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        return f"{argv[0]} timed out after {timeout:g}s"
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()
        return f"{argv[0]} exited {process.returncode}" + (f": {tail[-1]}" if tail else "")
    return None
