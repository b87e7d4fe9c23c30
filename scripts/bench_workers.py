"""The benchmark's Python peers, each run by scripts/bench.py as its own process so that its CPU and memory are
measured exactly like Sartoris's: `python bench_workers.py WORKER PARAMS.json`.

- asyncssh-census: the floor for Sartoris's stack: connect, run one command, close; nothing else.
- pssh-census: parallel-ssh's ParallelSSHClient (libssh2 + gevent) running one command on every host.
- pssh-deploy: the same git work as `sartoris sync`, driven by ParallelSSHClient: publish (a shell script),
  then a fetch pass and a switch pass over the same client (parallel-ssh keeps one connection per host).

Only the standard library is imported at the top: each worker imports its own library, so none pays for another.
Each prints one JSON line: {"ok": <hosts that exited 0>, "heads": {<stdout line>: <count>}, "errors": [...]}.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def asyncssh_census(params: dict[str, Any]) -> dict[str, Any]:
    """connect + run with asyncssh; keys, known_hosts and the options built once, as any sane script would."""
    import asyncio

    import asyncssh

    async def main() -> dict[str, Any]:
        # Built once: options per connect() would re-read ~/.ssh/config and redo the option checks per host.
        options = asyncssh.SSHClientConnectionOptions(
            username=params["user"], client_keys=asyncssh.load_keypairs([params["identity_file"]]),
            known_hosts=asyncssh.read_known_hosts(params["known_hosts"]), agent_path=None, compression_algs=None,
        )
        gate = asyncio.Semaphore(params["concurrency"])

        async def one(host: str) -> tuple[int, str]:
            async with gate:
                try:
                    async with asyncio.timeout(params["timeout"]):
                        async with asyncssh.connect(host, params["port"], options=options) as connection:
                            done = await connection.run(params["command"], check=False)
                            return int(done.exit_status or 0), str(done.stdout).strip()
                except (OSError, asyncssh.Error, TimeoutError) as exc:
                    return 255, f"error: {type(exc).__name__}: {exc}"

        return summarise(await asyncio.gather(*(one(host) for host in params["hosts"])))

    return asyncio.run(main())


def _pssh_client(params: dict[str, Any]) -> Any:
    from pssh.clients import ParallelSSHClient

    return ParallelSSHClient(
        params["hosts"], user=params["user"], port=params["port"], pkey=params["identity_file"],
        pool_size=params["concurrency"], num_retries=1, timeout=params["timeout"],
        allow_agent=False, identity_auth=False,
    )


def _pssh_run(client: Any, command: str, timeout: float) -> list[tuple[int, str]]:
    output = client.run_command(command, stop_on_errors=False)
    client.join(output, timeout=timeout)
    results = []
    for host_output in output:
        if host_output.exception is not None:
            results.append((255, f"error: {type(host_output.exception).__name__}: {host_output.exception}"))
            continue
        text = "\n".join(host_output.stdout or ())
        code = host_output.exit_code
        results.append((255 if code is None else int(code), text.strip()))
    return results


def pssh_census(params: dict[str, Any]) -> dict[str, Any]:
    return summarise(_pssh_run(_pssh_client(params), params["command"], params["timeout"]))


def pssh_deploy(params: dict[str, Any]) -> dict[str, Any]:
    """Publish, then fetch everywhere, then (only if every fetch succeeded) switch everywhere."""
    published = subprocess.run(
        ["sh", params["publish_script"]], capture_output=True, text=True, timeout=params["timeout"], check=False
    )
    if published.returncode != 0:
        return {"ok": 0, "heads": {}, "errors": [f"publish: {published.stderr.strip()[-300:]}"]}
    client = _pssh_client(params)
    fetched = summarise(_pssh_run(client, params["fetch"], params["timeout"]))
    if fetched["ok"] != len(params["hosts"]):
        return {**fetched, "errors": ["fetch: " + e for e in fetched["errors"]]}
    return summarise(_pssh_run(client, params["switch"], params["timeout"]))


def summarise(results: list[tuple[int, str]]) -> dict[str, Any]:
    errors = [text or f"exit {code}" for code, text in results if code != 0]
    heads = Counter(text for code, text in results if code == 0)
    return {"ok": len(results) - len(errors), "heads": dict(heads), "errors": errors[:5]}


WORKERS = {"asyncssh-census": asyncssh_census, "pssh-census": pssh_census, "pssh-deploy": pssh_deploy}


def main() -> int:
    worker, params_file = sys.argv[1], Path(sys.argv[2])
    params = json.loads(params_file.read_text())
    summary = WORKERS[worker](params)
    print(json.dumps(summary), flush=True)
    return 0 if summary["ok"] == len(params["hosts"]) else 1


if __name__ == "__main__":
    sys.exit(main())
