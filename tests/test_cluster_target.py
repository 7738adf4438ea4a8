"""Redis Cluster targets (protocol/cluster.py) and the test cluster (dev/cluster_group.py)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import redis
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cluster_support import cluster  # noqa: F401  (a fixture)
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.exceptions import BadRedisURL, RedisUnavailable
from pyresque.protocol import cluster as cluster_target
from pyresque.protocol.connection import connect, describe, lease_client


def test_a_cluster_url_names_nodes_credentials_and_tls() -> None:
    target = cluster_target.parse(
        "rediss+cluster://app:p%40ss@n1:7000,[::1]:7001,n3/?ssl_ca_certs=/ca.pem"
    )
    assert target.nodes == [("n1", 7000), ("::1", 7001), ("n3", 6379)]
    assert (target.username, target.password, target.tls) == ("app", "p@ss", True)
    assert target.tls_options == {"ssl_ca_certs": "/ca.pem"}
    assert target.shown() == "rediss+cluster://n1:7000,::1:7001,n3:6379/"
    assert cluster_target.parse("redis+cluster://h:1/0").nodes == [("h", 1)]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://u:secret@h:0/", "port '0'"),
        ("redis+cluster://u:secret@h:x", "port 'x'"),
        ("redis+cluster://u:secret@:7000/", "without a host"),
        ("redis+cluster://u:secret@h:7000/3", "database 0 only"),
        ("redis+cluster://u:secret@h:7000/?bogus=1", "unknown option"),
        ("redis+cluster://u:secret@h:7000/?ssl_ca_certs=/ca.pem", "not rediss+cluster"),
    ],
)
def test_a_bad_cluster_url_is_one_clear_error_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(BadRedisURL) as caught:
        connect(url)
    message = str(caught.value)
    assert problem in message
    assert "secret" not in message
    assert "redis+cluster://" in message  # the form to write


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=4),
    port=st.sampled_from(["0", "70000", "x", ""]),
)
def test_no_cluster_url_error_shows_a_password(password: str, port: str) -> None:
    def told(secret: str) -> str:
        with pytest.raises(BadRedisURL) as caught:
            cluster_target.parse(f"redis+cluster://user:{secret}@h:{port}/")
        return str(caught.value)

    secret = quote(password, safe="")
    assume(secret not in told("pw"))  # a password such as "redis" is in the message anyway
    assert secret not in told(secret)


def test_an_unreachable_cluster_is_redis_unavailable_naming_it() -> None:
    with pytest.raises(RedisUnavailable) as caught:
        connect("redis+cluster://user:secret@127.0.0.1:1,127.0.0.1:2/")
    message = str(caught.value)
    assert "redis+cluster://127.0.0.1:1,127.0.0.1:2/" in message
    assert "secret" not in message


def test_the_test_cluster_has_three_masters_each_with_a_replica(cluster: ClusterGroup) -> None:  # noqa: F811
    client = connect(cluster.url())
    try:
        masters = cluster.masters()
        assert len(masters) == 3
        roles = [redis.Redis(port=n.port).role()[0] for n in cluster.nodes]
        assert sorted(roles) == [b"master"] * 3 + [b"slave"] * 3
        # Each master serves a third of the slots, and the client routes by slot.
        assert sorted(len(cluster.slots_of(m)) for m in masters) == [1, 1, 1]
        client.set("{a}x", 1)
        assert client.get("{a}x") == b"1"
        assert describe(client).startswith("redis+cluster://127.0.0.1:")
    finally:
        client.close()


def test_the_lease_client_of_a_cluster_client_has_the_lease_timeouts(cluster: ClusterGroup) -> None:  # noqa: F811
    client = connect(cluster.url())
    lease = lease_client(client, 5.0)
    try:
        assert lease.get_connection_kwargs()["socket_timeout"] == 0.625
        assert isinstance(lease, redis.cluster.RedisCluster)
        assert lease.ping()
    finally:
        lease.close()
        client.close()
