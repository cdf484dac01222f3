"""Tokens from a real OpenID provider (oidc-provider), keys found through OpenID
discovery, used through custody by the official OpenAI SDK: the rows carry the
provider's `sub`; a forged token is refused with 401."""

import httpx2
import openai
import pytest

from conftest import Custody, client_credentials_token


def sdk(custody, user_token: str) -> openai.OpenAI:
    """The OpenAI SDK over custody's Unix socket, forwarding `user_token` as the user's."""
    return openai.OpenAI(
        api_key="sk-test-provider-key",
        base_url="http://localhost/openai/v1",
        http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=custody.socket)),
        default_headers={"x-custody-user-token": user_token},
        max_retries=0,
    )


def test_provider_tokens_attribute_sdk_calls(stub, oidc):
    with Custody(stub, extra=f"identity:\n  issuers:\n    - issuer: '{oidc}'\n      audiences: [custody]\n") as custody:
        token = client_credentials_token(oidc)
        completion = sdk(custody, token).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        assert completion.choices[0].message.content == "Hello from the stub."

        forged = token[: token.rindex(".") + 1] + "AAAA"
        with pytest.raises(openai.AuthenticationError) as info:
            sdk(custody, forged).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert info.value.body["type"] == "unauthenticated"
        custody.stop()
        rows = custody.query(
            "SELECT principal.sub, principal.issuer, policy.scopes, policy.decision, policy.rule, outcome.status "
            "FROM audit ORDER BY event_time"
        )
        assert rows[0][:2] == ("agent-service", oidc)
        assert rows[0][2] == ["tool:crm:read"]
        assert rows[0][5] == 200
        assert rows[1][3:] == ("deny", "identity:bad_signature", 401)
        for path in custody.audit_dir.rglob("*.parquet"):
            assert token.encode() not in path.read_bytes()
