"""The workspace side: connecting, the data asset and the GPU cluster.

`connect` reads the workspace's `config.json` with `MLClient.from_config` (building the client
makes no network call); every call that reaches Azure runs inside `azure_errors`, which turns
the SDK's exceptions into one-line `UserError`s. Credentials are never printed: an
authentication failure gives `LOGIN_MESSAGE`, not the credential chain's own report.
"""

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError
from ..paths import REPO_ROOT
from . import AML_CONFIG_FOLDER, require_azure

LOGIN_MESSAGE = (
    "not signed in to Azure: run `az login` (Azure CLI; add --use-device-code on a machine "
    "without a browser), or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a "
    "service principal, then run this again"
)
CONFIG_MESSAGE = (
    "no workspace config found: put the workspace's config.json (Azure portal: the workspace's "
    "page, 'Download config.json') at aml_config/config.json, with subscription_id, "
    "resource_group and workspace_name, or pass --workspace-config PATH"
)
DEFAULT_VM_SIZE = "Standard_NC4as_T4_v3"  # 1 NVIDIA T4 (16 GB), 4 vCPUs
# GPU sizes Azure has retired (NC, NCv2, NCv3 and ND series): a cluster of them cannot start.
RETIRED_VM_SIZES = frozenset(
    f"standard_{size}"
    for series in (
        "nc6 nc12 nc24 nc24r nc6_promo nc12_promo nc24_promo nc24r_promo",
        "nc6s_v2 nc12s_v2 nc24s_v2 nc24rs_v2 nc6s_v3 nc12s_v3 nc24s_v3 nc24rs_v3",
        "nd6s nd12s nd24s nd24rs",
    )
    for size in series.split()
)


def connect(workspace_config: Path | None = None, credential=None):
    """An `MLClient` for the workspace in `workspace_config` (default: searched from the repo).

    `credential` defaults to `DefaultAzureCredential` (az login, environment variables, managed
    identity); the tests pass a stand-in.
    """
    require_azure()
    from azure.ai.ml import MLClient
    from azure.ai.ml.exceptions import ValidationException
    from azure.identity import DefaultAzureCredential

    path = REPO_ROOT if workspace_config is None else Path(workspace_config)
    if workspace_config is not None and not path.exists():
        raise UserError(f"{path}: no such file; {CONFIG_MESSAGE}")
    credential = DefaultAzureCredential() if credential is None else credential
    _quiet_sdk_logs()
    try:
        client = MLClient.from_config(credential, path=str(path))
    except ValidationException as exc:
        if "could not find" in str(exc):
            raise UserError(CONFIG_MESSAGE) from None
        raise UserError(f"the workspace config is not valid: {_first_line(exc)}") from None
    except (ValueError, KeyError, OSError) as exc:
        raise UserError(f"the workspace config is not valid: {_first_line(exc)}") from None
    _check_placeholders(client)
    return client


def _quiet_sdk_logs() -> None:
    """Silence the SDK's multi-line log messages that `azure_errors` replaces with one line:
    the credential chain's report of every sign-in it tried, and "Found the config file"."""
    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    logging.getLogger("azure.ai.ml._ml_client").setLevel(logging.WARNING)


def _check_placeholders(client) -> None:
    """Refuse the template's `<...>` values (and empty ones) before anything reaches Azure."""
    fields = {
        "subscription_id": client.subscription_id,
        "resource_group": client.resource_group_name,
        "workspace_name": client.workspace_name,
    }
    unset = [key for key, value in fields.items() if not value or str(value).startswith("<")]
    if unset:
        raise UserError(
            f"the workspace config still has placeholders for {', '.join(unset)}: fill in "
            f"{AML_CONFIG_FOLDER / 'config.json'} (or download it from the workspace's page in "
            "the Azure portal)"
        )


@contextlib.contextmanager
def azure_errors(what: str) -> Iterator[None]:
    """Turn the Azure SDK's exceptions raised in the block into one-line `UserError`s."""
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    try:
        yield
    except ClientAuthenticationError:  # before HttpResponseError, its base class
        raise UserError(LOGIN_MESSAGE) from None
    except ResourceNotFoundError as exc:
        raise UserError(f"{what}: not found ({_first_line(exc)})") from None
    except ServiceRequestError as exc:
        raise UserError(f"{what}: could not reach Azure ({_first_line(exc)})") from None
    except (HttpResponseError, MlException) as exc:
        raise UserError(f"{what} failed: {_first_line(exc)}") from None


def workspace_summary(client) -> str:
    """Fetch the workspace (the first call that needs credentials) and describe it."""
    with azure_errors(f"reading workspace {client.workspace_name}"):
        workspace = client.workspaces.get(client.workspace_name)
    return f"Using Azure ML workspace {workspace.name} in location {workspace.location}"


def register_data(client, data_folder: Path, name: str, version: str | None = None):
    """Upload the Kaggle-layout data folder as a `uri_folder` data asset; return the asset.

    Without `version`, Azure gives the next version number, so re-uploading changed data never
    replaces what earlier jobs read.
    """
    require_azure()
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    from ..data import resolve_data_folder

    folder = resolve_data_folder(data_folder)
    if not (folder / "train" / "images").is_dir():
        raise UserError(f"{folder}: no train/images folder (expected the Kaggle layout)")
    data = Data(
        path=str(folder),
        type=AssetTypes.URI_FOLDER,
        name=name,
        version=version,
        description="TGS Salt Identification data in the Kaggle layout (train.csv, train/, test/)",
    )
    with azure_errors(f"uploading {folder} as data asset {name}"):
        return client.data.create_or_update(data)


def cluster_spec(
    name: str, vm_size: str, min_nodes: int, max_nodes: int, low_priority: bool, idle_seconds: int
):
    """The `AmlCompute` cluster to create or update, after checking the numbers and the size."""
    require_azure()
    from azure.ai.ml.entities import AmlCompute

    if vm_size.lower() in RETIRED_VM_SIZES:
        raise UserError(f"{vm_size} is retired by Azure; use e.g. {DEFAULT_VM_SIZE}")
    if not 0 <= min_nodes <= max_nodes or max_nodes < 1:
        raise UserError(
            f"need 0 <= min nodes <= max nodes and max >= 1 (got {min_nodes}, {max_nodes})"
        )
    if idle_seconds < 0:
        raise UserError(f"the idle time before scaling down must be >= 0 (got {idle_seconds})")
    return AmlCompute(
        name=name,
        size=vm_size,
        min_instances=min_nodes,
        max_instances=max_nodes,
        tier="low_priority" if low_priority else "dedicated",
        idle_time_before_scale_down=idle_seconds,
    )


def create_cluster(client, spec):
    """Create the cluster, or update an existing one's scale settings; wait until done."""
    with azure_errors(f"creating or updating cluster {spec.name}"):
        return client.compute.begin_create_or_update(spec).result()


def _first_line(exc: BaseException) -> str:
    """An exception as one short line (the SDK's messages run over many lines)."""
    text = str(exc).strip().splitlines()
    return (text[0][:300] if text else "") or type(exc).__name__
