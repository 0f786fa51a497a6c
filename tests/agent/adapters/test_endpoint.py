"""The model endpoint's grant: public endpoints as they are, local ones only when exactly allowed,
some addresses never; and where URL and key come from."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from shipyard.agent.adapters.endpoint import check_reachable, model_endpoint, plan_grant
from shipyard.agent.providers import ProviderError
from shipyard.config import AgentConfig
from shipyard.errors import ConfigError
from shipyard.sandbox.egress import Grant

PUBLIC = [ipaddress.ip_address("104.18.6.192")]
LOOPBACK = [ipaddress.ip_address("127.0.0.1")]
LAN = [ipaddress.ip_address("192.168.1.20")]


def test_a_public_endpoint_is_a_plain_grant_on_its_port() -> None:
    assert plan_grant("https://api.openai.com/v1", allow_local=None, addresses=PUBLIC) == Grant(
        "api.openai.com", 443
    )
    assert plan_grant("http://models.example.com:8000/v1", allow_local=None,
                      addresses=PUBLIC) == Grant("models.example.com", 8000)  # fmt: skip


def test_a_local_endpoint_needs_its_exact_host_and_port_allowed() -> None:
    with pytest.raises(ConfigError, match=r"--allow-local 127\.0\.0\.1:8080"):
        plan_grant("http://127.0.0.1:8080/v1", allow_local=None, addresses=LOOPBACK)
    granted = plan_grant(
        "http://127.0.0.1:8080/v1", allow_local="127.0.0.1:8080", addresses=LOOPBACK
    )
    assert granted == Grant("127.0.0.1", 8080, local=True)
    lan = plan_grant("http://ollama.lan:11434/v1", allow_local="OLLAMA.lan:11434", addresses=LAN)
    assert lan == Grant("ollama.lan", 11434, local=True)


@pytest.mark.parametrize(
    "allow", ["127.0.0.1:8081", "localhost:8080", "127.0.0.2:8080", "[::1]:8080", "0.0.0.0:8080"]
)
def test_an_allowance_for_anything_but_the_endpoint_is_refused(allow: str) -> None:
    with pytest.raises(ConfigError, match="may name only the endpoint's own host:port"):
        plan_grant("http://127.0.0.1:8080/v1", allow_local=allow, addresses=LOOPBACK)


def test_an_allowance_for_a_public_endpoint_is_refused_as_stale() -> None:
    with pytest.raises(ConfigError, match="public address; remove allow_local"):
        plan_grant("https://api.openai.com/v1", allow_local="api.openai.com:443", addresses=PUBLIC)


@pytest.mark.parametrize("address", ["169.254.169.254", "224.0.0.1", "0.0.0.0", "fe80::1"])
def test_metadata_multicast_and_unspecified_endpoints_are_never_allowed(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(ConfigError, match="cannot be allowed"):
        plan_grant(f"http://{host}:80/v1", allow_local=f"{host}:80",
                   addresses=[ipaddress.ip_address(address)])  # fmt: skip


def test_a_name_with_one_private_address_counts_as_local() -> None:
    with pytest.raises(ConfigError, match="loopback or private address"):
        plan_grant("https://llm.example.com/v1", allow_local=None, addresses=[*PUBLIC, *LAN])


@pytest.mark.parametrize(
    ("url", "problem"),
    [("ftp://h/v1", "not an http"), ("http://u:pw@h/v1", "carries credentials"),
     ("http://h:99999/v1", "not a valid URL"), ("/v1", "not an http")],
)  # fmt: skip
def test_bad_endpoint_urls_are_refused_with_the_fix(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        plan_grant(url, allow_local=None, addresses=PUBLIC)


def test_the_endpoint_and_key_come_from_the_option_then_config_then_variables() -> None:
    agent = AgentConfig(base_url="http://127.0.0.1:9/v1", api_key_env="MY_KEY")
    endpoint = model_endpoint("openai", agent, endpoint=None, api_key_env=None,
                              allow_local="127.0.0.1:9", environ={"MY_KEY": "k-123456"})  # fmt: skip
    assert (endpoint.base_url, endpoint.api_key, endpoint.key_env) == (
        "http://127.0.0.1:9/v1", "k-123456", "MY_KEY")  # fmt: skip
    assert "k-123456" not in repr(endpoint)
    assert "k-123456" not in str(endpoint.record())
    local = model_endpoint("anthropic", AgentConfig(), endpoint="http://127.0.0.1:9", api_key_env=None,
                           allow_local="127.0.0.1:9", environ={})  # fmt: skip
    assert local.key_env == "ANTHROPIC_API_KEY"
    assert local.api_key  # a placeholder: local servers ignore it, the tools insist on one
    with pytest.raises(ProviderError, match="set the host variable OPENAI_API_KEY"):
        model_endpoint("openai", AgentConfig(), endpoint="https://8.8.8.8/v1", api_key_env=None,
                       allow_local=None, environ={})  # fmt: skip


def test_an_endpoint_that_does_not_answer_is_one_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        endpoint = model_endpoint("openai", AgentConfig(), endpoint=f"http://127.0.0.1:{port}/v1",
                                  api_key_env=None, allow_local=f"127.0.0.1:{port}", environ={})  # fmt: skip
        with pytest.raises(ProviderError, match="is unreachable from this host"):
            check_reachable(endpoint, timeout=2)
