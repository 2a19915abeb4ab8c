"""manage.py panda_pilot_config: pilot3's default.cfg pointed at this server."""

import io

import pytest
from django.core.management import CommandError, call_command

from sites.models import PilotCredential
from sites.services import hash_token

from ..factories import SiteFactory

# The lines of pilot3 3.7's default.cfg that name servers (and one that must stay as it is).
DEFAULT_CFG = """[Pilot]
pandaserver: https://pandaserver.cern.ch:25443
# pandaserver: https://aipanda007.cern.ch:25443
iddsserver: https://pandaserver.cern.ch:25443
rtlogging: logstash;http://aipanda020.cern.ch:8443
heartbeat: 1800
[Information]
queuedata_url: http://pandaserver.cern.ch:25085/cache/schedconfig/{pandaqueue}.all.json
queues_url: https://atlas-cric.cern.ch/cache/schedconfig/{pandaqueue}.json
storages_url: https://atlas-cric.cern.ch/cache/ddmendpoints.json
[Rucio]
url: https://rucio-lb-prod.cern.ch/traces/
host: https://voatlasrucio-server-prod.cern.ch:443
"""


def run(*args):
    out = io.StringIO()
    call_command("panda_pilot_config", *args, stdout=out)
    return out.getvalue()


def test_every_server_points_at_us_or_nowhere(tmp_path):
    cfg = tmp_path / "default.cfg"
    cfg.write_text(DEFAULT_CFG)
    text = run(str(cfg), "--server", "http://panda.example.org:8000/")
    assert "pandaserver: http://panda.example.org:8000\n" in text
    assert "queuedata_url: http://panda.example.org:8000/cache/schedconfig/{pandaqueue}.all.json" in text
    assert "queues_url: http://panda.example.org:8000/cache/schedconfig/{pandaqueue}.json" in text
    assert "storages_url: http://panda.example.org:8000/cache/ddmendpoints.json" in text
    assert "rtlogging: \n" in text
    assert "cern.ch" not in text.replace("# pandaserver: https://aipanda007.cern.ch:25443", "")
    assert "heartbeat: 1800" in text


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run(str(tmp_path / "missing.cfg"), "--server", "http://x")
    (tmp_path / "default.cfg").write_text(DEFAULT_CFG)
    with pytest.raises(CommandError, match="must be an http"):
        run(str(tmp_path / "default.cfg"), "--server", "panda:8000")


@pytest.mark.django_db
def test_a_pilot_credential_file_holds_just_the_token(tmp_path):
    SiteFactory(name="LOCAL_TEST")
    target = tmp_path / "pilot.token"
    assert "written to" in io_call("create_pilot_credential", "farm", "LOCAL_TEST", "--output", str(target))
    token = target.read_text()
    assert token == token.strip() and (target.stat().st_mode & 0o777) == 0o600
    assert PilotCredential.objects.get(name="farm").token_sha256 == hash_token(token)
    with pytest.raises(CommandError, match="cannot create"):
        io_call("create_pilot_credential", "farm2", "LOCAL_TEST", "--output", str(target))
    assert not PilotCredential.objects.filter(name="farm2").exists()


def io_call(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
