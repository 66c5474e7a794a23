"""Identity token files on the local driver: a job reads the file its environment names, the driver's
listings replace a token past half its life, and the folders of replicas that are gone are removed."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt
import pytest
from tests.support import wait_until

from polycloud.drivers.jobs import JobLaunch
from polycloud.drivers.local import LocalDriver
from polycloud.drivers.local.identity import LocalIdentity
from polycloud.pki import workload as wl

from .support import Signer

COPY = "import os, shutil, sys; shutil.copy(os.environ['POLYCLOUD_IDENTITY_TOKEN_FILE'], sys.argv[1])"


@pytest.fixture
def signer() -> Signer:
    return Signer()


def test_a_job_reads_its_token_and_a_listing_renews_it_past_half_life(
    home: Path, tmp_path: Path, signer: Signer
) -> None:
    driver = LocalDriver("local-a", home, identity=signer)
    out = tmp_path / "copied"
    signer.age_s = 1800  # the first token is already due
    code = COPY + "; import time; time.sleep(30)"
    driver.start_job(JobLaunch("train", "local-a", 4, 1, ("python", "-c", code, str(out))))
    token = wait_until(lambda: out.read_text() if out.is_file() else None, what="the job to copy its token")
    key = jwt.PyJWK(signer.key.public.jwk).key
    body = jwt.decode(token, key, algorithms=["RS256"], audience="sts.amazonaws.com")
    assert body["sub"] == "system:polycloud:risk:job:train:cluster:local-a"
    path = home / "jobs" / "local-a" / "train" / "identity" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signer.asked == [("job", "train", 4, "local-a")]

    signer.age_s = 0
    driver.list_jobs()  # the running job's token is past half its life: replaced
    assert path.read_text() != token and not wl.due(path.read_text())
    driver.list_jobs()  # fresh now: left alone
    assert len(signer.asked) == 2
    driver.stop_job("train", grace_s=0)
    driver.close()


def test_without_an_issuer_no_token_is_named(home: Path) -> None:
    identity = LocalIdentity(None, home, "local-a")
    assert identity.issue("service", "svc", 1, identity.replica_token("r1")) == {}
    identity.refresh("service", "svc", 1, identity.replica_token("r1"))
    assert not (home / "identity").exists()


def test_token_folders_of_replicas_that_are_gone_are_removed(home: Path, signer: Signer) -> None:
    identity = LocalIdentity(signer, home, "local-a")
    env = identity.issue("service", "svc", 1, identity.replica_token("svc-local-a-1"))
    identity.issue("service", "svc", 1, identity.replica_token("svc-local-a-2"))
    assert env == {"POLYCLOUD_IDENTITY_TOKEN_FILE": str(identity.replica_token("svc-local-a-1"))}

    identity.forget_replicas({"svc-local-a-2"})
    assert not identity.replica_token("svc-local-a-1").parent.exists()
    assert identity.replica_token("svc-local-a-2").is_file()
