"""The Azure Resource Manager client: the only module that builds azure-mgmt-compute clients.

Credentials: the static bearer token in AZURE_ACCESS_TOKEN when set, else DefaultAzureCredential.
A plain-http AZURE_ARM_URL is accepted for loopback hosts only (the local emulator); azure-core
refuses bearer tokens over http unless a request says `enforce_https=False`, so the
authentication policy says it for loopback URLs, and only for them.
"""

from __future__ import annotations

import time
from functools import cache
from typing import TYPE_CHECKING

from bot.errors import SettingsError
from bot.settings import Settings, azure_settings_problem, is_loopback_url

if TYPE_CHECKING:  # the SDK is imported where used: importing this module loads none of it
    from azure.core.credentials import AccessToken, TokenCredential
    from azure.mgmt.compute import ComputeManagementClient

ARM_SCOPE = "https://management.azure.com/.default"


class StaticTokenCredential:
    """A TokenCredential for a token obtained elsewhere (`az account get-access-token`)."""

    kind = "static bearer token (AZURE_ACCESS_TOKEN)"

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)


@cache
def _policies() -> tuple[type, type]:
    """azure-core's policies as this client needs them (authentication, retry), defined on first use."""
    from azure.core.pipeline.policies import RetryPolicy
    from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

    class LoopbackHttpAuthPolicy(ARMChallengeAuthenticationPolicy):
        """ARM's authentication policy, allowing plain http to loopback hosts only."""

        def on_request(self, request) -> None:
            if is_loopback_url(request.http_request.url):
                request.context.options["enforce_https"] = False
            super().on_request(request)

    class NoPostRetryPolicy(RetryPolicy):
        """azure-core retries a POST that answered 500/503/504. For Run Command that POST may already
        have started the script: a retry could run an apply twice. GETs (polling) are still retried."""

        def _is_method_retryable(self, settings, request, response=None):
            if request.method.upper() == "POST":
                return False
            return super()._is_method_retryable(settings, request, response)

    return LoopbackHttpAuthPolicy, NoPostRetryPolicy


def credential(settings: Settings) -> TokenCredential:
    if settings.azure_access_token:
        return StaticTokenCredential(settings.azure_access_token)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def credential_kind(settings: Settings) -> str:
    return StaticTokenCredential.kind if settings.azure_access_token else "DefaultAzureCredential"


def compute_client(settings: Settings) -> ComputeManagementClient:
    """A ComputeManagementClient for AZURE_ARM_URL; refuses plain http except to loopback with a static token."""
    problem = azure_settings_problem(settings)
    if problem:
        raise SettingsError(problem)
    from azure.mgmt.compute import ComputeManagementClient

    url = settings.azure_arm_url.rstrip("/")
    cred = credential(settings)
    auth_policy, retry_policy = _policies()
    return ComputeManagementClient(
        cred,
        settings.azure_subscription_id or "",  # set: azure_settings_problem() said nothing
        base_url=url,
        credential_scopes=[ARM_SCOPE],
        authentication_policy=auth_policy(cred, ARM_SCOPE),
        retry_policy=retry_policy(retry_total=2),
    )
