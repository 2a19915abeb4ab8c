"""pilot3's configuration file with every server it talks to pointed at this one.

pilot3 reads `pilot/util/default.cfg` unless HARVESTER_PILOT_CONFIG names another file; the
default names CERN's PanDA server, CRIC, Rucio and a message broker. A site running the
unchanged pilot against us needs a copy where the PanDA server and the queue/storage
descriptions are ours and the services we do not run (real-time logging, Rucio traces, the
message broker) point nowhere, so the pilot neither leaks data nor waits on them.
"""

import re

# default.cfg key -> value; {server} is this server's URL. Keys are matched at the start of a line.
OVERRIDES = {
    "pandaserver": "{server}",
    "iddsserver": "{server}",
    "rtlogging": "",
    "queuedata_url": "{server}/cache/schedconfig/{{pandaqueue}}.all.json",
    "queues_url": "{server}/cache/schedconfig/{{pandaqueue}}.json",
    "storages_url": "{server}/cache/ddmendpoints.json",
    # [Rucio] traces and host, [Message_broker] url: services this system does not run.
    "url": "http://127.0.0.1:9/",
    "host": "http://127.0.0.1:9",
}


def pilot_config(default_cfg: str, server_url: str) -> str:
    """`default_cfg`'s text with OVERRIDES applied for `server_url` (scheme://host:port)."""
    text = default_cfg
    server = server_url.rstrip("/")
    for key, value in OVERRIDES.items():
        line = f"{key}: {value.format(server=server)}"
        text = re.sub(rf"^{key}:.*$", lambda _match, line=line: line, text, flags=re.MULTILINE)
    return text
