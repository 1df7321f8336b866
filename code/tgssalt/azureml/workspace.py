"""The workspace side: connecting, signing in, the data asset and the GPU cluster.

`connect` reads the repository's workspace config (`find_workspace_config`, never one above the
repository) with `MLClient.from_config` (building the client makes no network call), signing in
with `sign_in_credential`; every call that reaches Azure runs inside `azure_errors`, which turns
the SDK's exceptions into one-line `UserError`s. Credentials are never printed: an
authentication failure gives `LOGIN_MESSAGE`, not the credential chain's own report.
"""

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError, first_line
from ..paths import REPO_ROOT
from . import require_azure

LOGIN_MESSAGE = (
    "not signed in to Azure: run `az login` (Azure CLI; add --use-device-code on a machine "
    "without a browser), or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a "
    "service principal, then run this again"
)
CONFIG_MESSAGE = (
    "no workspace config found: put the workspace's config.json (Azure portal: the workspace's "
    "page, 'Download config.json') at .azureml/config.json in the repository, or fill in "
    "aml_config/config.json (subscription_id, resource_group, workspace_name), or pass "
    "--workspace-config PATH"
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


def find_workspace_config(given: Path | None = None, root: Path = REPO_ROOT) -> Path:
    """The workspace config file to use, never searched for above the repository.

    `MLClient.from_config` given a folder searches `.azureml/config.json` in every parent folder
    (20 levels) before `aml_config/`, so a config above the repository (another project's) would
    silently pick the wrong workspace. Default: the repository's `.azureml/config.json`, else
    `aml_config/config.json`; a given folder is looked into the same way, itself included.
    """
    if given is not None and Path(given).is_file():
        return Path(given)
    if given is not None and not Path(given).exists():
        raise UserError(f"{given}: no such file; {CONFIG_MESSAGE}")
    folder = root if given is None else Path(given)
    for candidate in (".azureml/config.json", "aml_config/config.json", "config.json"):
        if (folder / candidate).is_file():
            return folder / candidate
    raise UserError(CONFIG_MESSAGE)


def connect(workspace_config: Path | None = None, credential=None, root: Path = REPO_ROOT):
    """An `MLClient` for the workspace in `workspace_config` (default: the repository's).

    Prints which config file it uses. `credential` defaults to `sign_in_credential()`; the
    tests pass a stand-in. Building the client makes no network call.
    """
    require_azure()
    from azure.ai.ml import MLClient
    from azure.ai.ml.exceptions import ValidationException

    path = find_workspace_config(workspace_config, root)
    print(f"workspace config: {path}")
    credential = sign_in_credential() if credential is None else credential
    _quiet_sdk_logs()
    try:
        client = MLClient.from_config(credential, path=str(path))
    except (ValidationException, ValueError, KeyError, OSError) as exc:
        raise UserError(f"{path}: the workspace config is not valid: {first_line(exc)}") from None
    _check_placeholders(client, path)
    return client


def sign_in_credential(interactive: bool | None = None):
    """`DefaultAzureCredential` (az login, service principal variables, managed identity), then,
    at a terminal, a browser sign-in, then a device code: the v1 SDK's behaviour, as in
    Microsoft's examples. Each is tried only when the one before has nothing to offer; without a
    terminal (CI, a job) only the first is used, so nothing waits for a person."""
    from azure.identity import (
        ChainedTokenCredential,
        DefaultAzureCredential,
        DeviceCodeCredential,
        InteractiveBrowserCredential,
    )

    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    if not interactive:
        return DefaultAzureCredential()
    return ChainedTokenCredential(
        _PassOn(DefaultAzureCredential()),
        _PassOn(InteractiveBrowserCredential()),
        DeviceCodeCredential(),
    )


class _PassOn:
    """Wrap a credential so that its failure passes the chain on to the next one.

    `ChainedTokenCredential` stops at a credential that fails rather than one that is
    unavailable, and `DefaultAzureCredential` with nothing configured, or a browser that cannot
    open (a remote shell), fails: the next sign-in should still be offered.
    """

    def __init__(self, credential):
        self.credential = credential

    def get_token(self, *scopes, **kwargs):
        from azure.identity import CredentialUnavailableError

        try:
            return self.credential.get_token(*scopes, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure: try the next sign-in
            raise CredentialUnavailableError(message=first_line(exc)) from None


def _quiet_sdk_logs() -> None:
    """Silence the SDK's multi-line log messages that `azure_errors` replaces with one line:
    the credential chain's report of every sign-in it tried, and "Found the config file"."""
    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    logging.getLogger("azure.ai.ml._ml_client").setLevel(logging.WARNING)


def _check_placeholders(client, path: Path) -> None:
    """Refuse the template's `<...>` values (and empty ones) before anything reaches Azure."""
    fields = {
        "subscription_id": client.subscription_id,
        "resource_group": client.resource_group_name,
        "workspace_name": client.workspace_name,
    }
    unset = [key for key, value in fields.items() if not value or str(value).startswith("<")]
    if unset:
        raise UserError(
            f"{path}: the workspace config still has placeholders for {', '.join(unset)}: fill "
            "it in (or download config.json from the workspace's page in the Azure portal)"
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
        raise UserError(f"{what}: not found ({first_line(exc)})") from None
    except ServiceRequestError as exc:
        raise UserError(f"{what}: could not reach Azure ({first_line(exc)})") from None
    except (HttpResponseError, MlException) as exc:
        raise UserError(f"{what} failed: {first_line(exc)}") from None


def workspace_summary(client) -> str:
    """Fetch the workspace (the first call that needs credentials) and describe it."""
    with azure_errors(f"reading workspace {client.workspace_name}"):
        workspace = client.workspaces.get(client.workspace_name)
    return f"Using Azure ML workspace {workspace.name} in location {workspace.location}"


def training_files(folder: Path) -> list[str]:
    """The files under `folder` that training reads, relative, sorted: the layout's CSVs
    (depths.csv when present) and the PNGs of its image folders (`data.IMAGE_FOLDERS`). The rest
    (the Kaggle zips, data/demo/, notes) is not uploaded: every job downloads the asset again."""
    from ..data import IMAGE_FOLDERS, LAYOUT_CSVS

    files = [name for name in LAYOUT_CSVS if (folder / name).is_file()]
    for sub in IMAGE_FOLDERS:
        files += [f"{sub}/{path.name}" for path in sorted((folder / sub).glob("*.png"))]
    return files


@contextlib.contextmanager
def staged(folder: Path, files: list[str]) -> Iterator[Path]:
    """A temporary folder holding only `files` of `folder` (hard links, else copies), to upload."""
    with tempfile.TemporaryDirectory(prefix="tgs-upload-") as tmp:
        for name in files:
            target = Path(tmp) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(folder / name, target)
            except OSError:  # another file system, or no hard links there
                shutil.copyfile(folder / name, target)
        yield Path(tmp)


def register_data(client, data_folder: Path, name: str, version: str | None = None):
    """Upload what training reads of the Kaggle-layout data folder as a `uri_folder` data
    asset; return the asset.

    Without `version`, Azure gives the next version number, so re-uploading changed data never
    replaces what earlier jobs read.
    """
    require_azure()
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    from ..data import IMAGE_FOLDERS, TRAIN_IMAGES, resolve_data_folder

    folder = resolve_data_folder(data_folder)
    if not (folder / TRAIN_IMAGES).is_dir():
        raise UserError(f"{folder}: no {TRAIN_IMAGES} folder (expected the Kaggle layout)")
    files = training_files(folder)
    size = sum((folder / file).stat().st_size for file in files) / 1e6
    kept = {name.split("/")[0] for name in files}
    left = sorted(path.name for path in folder.iterdir() if path.name not in kept)
    print(
        f"uploading {len(files)} files ({size:.1f} MB) of {folder}: the CSVs and the PNGs of "
        f"{', '.join(IMAGE_FOLDERS)}; not uploaded: {', '.join(left) or 'nothing'}"
    )
    with staged(folder, files) as upload:
        data = Data(
            path=str(upload),
            type=AssetTypes.URI_FOLDER,
            name=name,
            version=version,
            description="TGS Salt Identification data in the Kaggle layout (train.csv, train/, "
            f"test/), uploaded from {folder}",
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
    """Create the cluster, or update an existing one's node counts and idle time; wait.

    Azure cannot change an existing cluster's VM size or tier: asking for other ones is refused
    (delete the cluster to change them) rather than reported as done.
    """
    from azure.core.exceptions import ResourceNotFoundError

    try:
        existing = client.compute.get(spec.name)
    except ResourceNotFoundError:
        existing = None
    if existing is not None:
        _check_unchangeable(existing, spec)
    with azure_errors(f"creating or updating cluster {spec.name}"):
        return client.compute.begin_create_or_update(spec).result()


def _check_unchangeable(existing, spec) -> None:
    """Refuse a size or tier that differs from the existing cluster's."""
    asked = {"VM size": (spec.size, existing.size), "tier": (spec.tier, existing.tier)}
    differ = [
        f"{what} {have} (asked {want})"
        for what, (want, have) in asked.items()
        if have and str(want).lower() != str(have).lower()
    ]
    if differ:
        raise UserError(
            f"cluster {spec.name} exists with {', '.join(differ)}: Azure cannot change an "
            "existing cluster's VM size or tier; delete it to change (studio, Compute), or "
            "pass --name for a new cluster"
        )


def cluster_report(cluster) -> str:
    """What Azure says the cluster is (not what was asked), one line."""
    idle = cluster.idle_time_before_scale_down
    idle_text = f"idle nodes released after {idle} s" if idle else "idle time not reported"
    return (
        f"cluster {cluster.name}: {cluster.size}, {cluster.min_instances} to "
        f"{cluster.max_instances} nodes ({cluster.tier}), {idle_text}; its VM size and tier "
        "cannot change (delete it to change), its node counts and idle time can"
    )
