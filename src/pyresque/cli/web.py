"""``pyresque web``: serving the dashboard (the web extra)."""

from __future__ import annotations

import logging

import click

from pyresque.cli.support import connect, connection_options, log_format_option, start_logging
from pyresque.protocol.targets import url_from_env


@click.command("web")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; any other than loopback needs --token or --basic-auth.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=5678, show_default=True)
@click.option("--url-prefix", default="", help="Serve under this URL path, e.g. /resque.")
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.option(
    "--token",
    envvar="PYRESQUE_WEB_TOKEN",
    default=None,
    help="Require this bearer token; browsers sign in with it (env PYRESQUE_WEB_TOKEN).",
)
@click.option(
    "--basic-auth",
    envvar="PYRESQUE_WEB_BASIC_AUTH",
    default=None,
    metavar="USER:PASSWORD",
    help="Require HTTP basic auth (env PYRESQUE_WEB_BASIC_AUTH).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    envvar="PYRESQUE_WEB_ALLOWED_HOSTS",
    metavar="NAME",
    help="Also answer to this Host name (repeatable; '*' for any); localhost and the --host "
    "address always work (env PYRESQUE_WEB_ALLOWED_HOSTS, space-separated).",
)
@log_format_option
@connection_options
def web_command(
    host: str,
    port: int,
    url_prefix: str,
    read_only: bool,
    token: str | None,
    basic_auth: str | None,
    allowed_hosts: tuple[str, ...],
    log_format: str,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Serve the web dashboard and JSON API (needs the web extra: pip install 'pyresque[web]')."""
    try:
        from pyresque.web.app import WebConfigError
        from pyresque.web.serve import preflight, serve
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard needs the web extra: pip install 'pyresque[web]' ({exc})"
        ) from exc
    if log_format != "text":  # else uvicorn's own format, as before
        start_logging(logging.INFO, log_format)
    try:
        preflight(host, token, basic_auth)
    except WebConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    resque = connect(redis_url, namespace)  # one clear line if Redis is unreachable
    resque.redis.close()
    shown = f"[{host}]" if ":" in host else host
    prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
    click.echo(f"pyresque dashboard: http://{shown}:{port}{prefix}/ (Ctrl-C to stop)")
    serve(
        redis_url or url_from_env(),
        namespace,
        host=host,
        port=port,
        prefix=url_prefix,
        read_only=read_only,
        auth_token=token,
        basic_auth=basic_auth,
        allowed_hosts=allowed_hosts,
        logs_to_root=log_format != "text",
    )
