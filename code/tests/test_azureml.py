"""Azure ML scale-out (SDK v2), offline: no network, no credentials.

A stand-in `MLClient` (patched in where the scripts call `MLClient.from_config`) records what
would be created; the `--dry-run` YAMLs are read back with `azure.ai.ml.load_job`; collecting
runs against a stand-in jobs API whose downloads write fake fold outputs.
"""

import builtins
import datetime
import json
import runpy
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import azure.ai.ml
import azure.identity
import pytest
import yaml
from azure.ai.ml import load_job
from azure.core.exceptions import ClientAuthenticationError
from fakes import config_for, write_data, write_fold
from tgssalt.azureml import INSTALL_HINT, require_azure
from tgssalt.azureml.collect import collect_outputs
from tgssalt.azureml.environment import (
    BASE_IMAGE,
    CONDA_FILE,
    ENVIRONMENT_FOLDER,
    job_requirements,
    render_conda_spec,
)
from tgssalt.azureml.jobs import RunSpec, fold_jobs, job_yaml, submit_run
from tgssalt.azureml.workspace import LOGIN_MESSAGE, connect, register_data, workspace_summary
from tgssalt.errors import UserError

CODE = Path(__file__).resolve().parents[1]
REPO = CODE.parent
CONFIG = "code/train-config/test/unet-resnet-test.json"  # 4 folds, run unet-resnet-test-1-cvfold<k>


class FakeJobs:
    """`ml_client.jobs`: records submissions; lists `listed`; downloads via `on_download`."""

    def __init__(self, listed=(), on_download=None):
        self.created, self.downloads = [], []
        self.listed, self.on_download = list(listed), on_download

    def create_or_update(self, job):
        self.created.append(job)
        name = f"job-{len(self.created)}"
        return SimpleNamespace(name=name, studio_url=f"https://ml.azure.com/runs/{name}")

    def list(self):
        return iter(self.listed)

    def download(self, name, *, download_path=".", output_name=None, all=False):
        self.downloads.append((name, output_name))
        self.on_download(name, Path(download_path) / "named-outputs" / output_name)


class FakeClient:
    """An `MLClient` stand-in: jobs, compute, data and workspaces, all recorded."""

    subscription_id, resource_group_name, workspace_name = "sub-id", "rg", "tgs-ws"

    def __init__(self, jobs=None):
        self.jobs = jobs or FakeJobs()
        self.clusters, self.assets = [], []
        poller = SimpleNamespace(result=lambda: self.clusters[-1])
        self.compute = SimpleNamespace(
            begin_create_or_update=lambda c: self.clusters.append(c) or poller
        )
        self.data = SimpleNamespace(create_or_update=self._create_data)
        workspace = SimpleNamespace(name="tgs-ws", location="westeurope")
        self.workspaces = SimpleNamespace(get=lambda name: workspace)

    def _create_data(self, data):
        self.assets.append(data)
        return SimpleNamespace(name=data.name, version="1", path="azureml://datastores/x")


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails: the code under test must not reach the network."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def fake_mlclient(monkeypatch, no_network):
    """Patch `azure.ai.ml.MLClient` (and the default credential) with stand-ins; yields the
    client that `MLClient.from_config` returns and the paths it was called with."""
    client, calls = FakeClient(), []

    class StandInMLClient:
        @classmethod
        def from_config(cls, credential, *, path=None, **kwargs):
            calls.append(path)
            return client

    monkeypatch.setattr(azure.ai.ml, "MLClient", StandInMLClient)
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", lambda: "stand-in credential")
    client.from_config_paths = calls
    return client


def _script_main(path: Path):
    """A script's `main`, loaded without running it (the scripts have hyphenated names)."""
    return runpy.run_path(str(path))["main"]


def _workspace_config(folder: Path) -> Path:
    """A filled-in workspace config.json (made-up ids) in `folder`."""
    path = folder / "config.json"
    ids = {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "rg"}
    path.write_text(json.dumps({**ids, "workspace_name": "tgs-ws"}))
    return path


def test_submit_creates_one_job_per_fold(fake_mlclient, tmp_path, capsys):
    workspace = _workspace_config(tmp_path)
    main = _script_main(CODE / "azureml-submit-run.py")
    main(["--config-file", CONFIG, "--entry-script", "train_fold.py", "--experiment-name",
          "tgs-test", "--folds", "0,2", "--workspace-config", str(workspace)])  # fmt: skip
    assert fake_mlclient.from_config_paths == [str(workspace)]
    jobs = fake_mlclient.jobs.created
    assert [job.display_name for job in jobs] == [
        "unet-resnet-test-1-cvfold0",
        "unet-resnet-test-1-cvfold2",
    ]
    for fold, job in zip([0, 2], jobs, strict=True):
        assert job.command == (
            "python train_fold.py --config-file train-config/test/unet-resnet-test.json "
            f"--cv-currentfold {fold} --data-folder ${{{{inputs.data}}}} "
            "--outputs-folder ${{outputs.outputs}}"
        )
        assert job.code == str(CODE) and job.compute == "tgschallenge"
        assert job.experiment_name == "tgs-test"
        data = job.inputs["data"]
        assert (data.type, data.path, data.mode) == (
            "uri_folder",
            "azureml:tgs-data@latest",
            "download",
        )
        output = job.outputs["outputs"]
        assert (output.type, output.mode) == ("uri_folder", "rw_mount")
        assert job.environment.image == BASE_IMAGE
        pip = job.environment.conda_file["dependencies"][-1]["pip"]
        assert "jax[cuda12]==0.10.2" in pip and "azureml-mlflow==1.62.0.post6" in pip
        assert job.environment_variables == {"KERAS_BACKEND": "jax"}
        assert job.tags["fold"] == str(fold) and job.tags["base"] == "unet-resnet-test-1"
    out = capsys.readouterr().out
    assert "unet-resnet-test-1-cvfold0: submitted job job-1  https://ml.azure.com/runs/job-1" in out
    assert "unet-resnet-test-1-cvfold2: submitted job job-2  https://ml.azure.com/runs/job-2" in out


def test_all_folds_by_default_docker_environment_and_data_version():
    jobs = fold_jobs(RunSpec(CONFIG, "e", docker=True, data_asset="tgs-data:3", compute="gpu"))
    assert list(jobs) == [f"unet-resnet-test-1-cvfold{k}" for k in range(4)]
    job = jobs["unet-resnet-test-1-cvfold3"]
    assert Path(job.environment.build.path) == ENVIRONMENT_FOLDER
    assert job.inputs["data"].path == "azureml:tgs-data:3" and job.compute == "gpu"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"folds": [1, 4]}, r"fold\(s\) \[4\] out of range: the config has 4 folds"),
        ({"experiment": "my experiment"}, "experiment name has letters, digits"),
        ({"config_file": "code/train-config/absent.json"}, "config file not found"),
        ({"entry_script": "absent.py"}, "entry script not found"),
        ({"config_file": str(REPO / "requirements.txt")}, "must be inside"),
    ],
)
def test_bad_submissions_fail_before_anything_is_built(change, fragment):
    spec = {"config_file": CONFIG, "experiment": "e", **change}
    with pytest.raises(UserError, match=fragment):
        fold_jobs(RunSpec(**spec))


def test_dry_run_yamls_load_with_load_job(tmp_path, no_network, capsys):
    paths = submit_run(RunSpec(CONFIG, "tgs-dry", folds=[1, 3]), tmp_path, dry_run=True)
    assert [path.name for path in paths] == [
        "unet-resnet-test-1-cvfold1.yml",
        "unet-resnet-test-1-cvfold3.yml",
    ]
    assert all(path.parent == tmp_path / "azureml" / "tgs-dry" for path in paths)
    for fold, path in zip([1, 3], paths, strict=True):
        raw = yaml.safe_load(path.read_text())
        assert not Path(raw["code"]).is_absolute()
        job = load_job(path)
        assert (path.parent / job.code).resolve() == CODE
        assert f"--cv-currentfold {fold}" in job.command and job.compute == "tgschallenge"
        assert job.experiment_name == "tgs-dry" and job.environment.image == BASE_IMAGE
        assert raw["inputs"]["data"]["path"] == "azureml:tgs-data@latest"
        assert job.inputs["data"].path == "tgs-data@latest"  # load_job drops "azureml:"
        assert job.outputs["outputs"].mode == "rw_mount"
        assert job.environment_variables == {"KERAS_BACKEND": "jax"}
    assert "dry run: 2 job(s) written, nothing submitted" in capsys.readouterr().out


def test_dry_run_paths_are_relative_to_the_repo(tmp_path):
    """Under the default outputs/azureml/<experiment>/, paths work from any clone."""
    job = fold_jobs(RunSpec(CONFIG, "e", folds=[0], docker=True))["unet-resnet-test-1-cvfold0"]
    spec = yaml.safe_load(job_yaml(job, REPO / "outputs" / "azureml" / "e"))
    assert spec["code"] == "../../../code"
    assert spec["environment"] == {"build": {"path": "../../../aml_config/environment"}}
    path = tmp_path / "job.yml"
    path.write_text(job_yaml(job, tmp_path))
    assert (tmp_path / load_job(path).environment.build.path).resolve() == ENVIRONMENT_FOLDER


def test_cli_dry_run_needs_no_credentials(tmp_path):
    script = [sys.executable, str(CODE / "azureml-submit-run.py")]
    args = ["--config-file", CONFIG, "--entry-script", "train_fold.py", "--experiment-name",
            "tgs-cli", "--dry-run", "--outputs-folder", str(tmp_path)]  # fmt: skip
    done = subprocess.run([*script, *args], capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "dry run: 4 job(s) written, nothing submitted" in done.stdout
    written = sorted((tmp_path / "azureml" / "tgs-cli").glob("*.yml"))
    assert len(written) == 4 and all(load_job(path).type == "command" for path in written)


def _job(name, run, status, minutes, experiment="tgs-exp"):
    created = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        minutes=minutes
    )
    return SimpleNamespace(
        name=name,
        status=status,
        experiment_name=experiment,
        display_name=run,
        tags={"run": run},
        studio_url=f"https://ml.azure.com/runs/{name}",
        creation_context=SimpleNamespace(created_at=created),
    )


def test_collect_downloads_finished_folds_and_lists_the_rest(tmp_path, capsys):
    """Five folds: 0 resubmitted after a failure, 1 already here, 2 done, 3 running, 4 failed.
    The collected folds then ensemble as local ones."""
    from tgssalt.ensemble import run_ensemble

    data = write_data(tmp_path / "data")
    config, outputs = config_for(folds=5), tmp_path / "outputs"
    write_fold(outputs, config, 1, data)
    fold_of = {"new0": 0, "old0": 0, "done1": 1, "done2": 2, "run3": 3, "fail4": 4, "other": 2}
    jobs = [
        _job("old0", "fake-1-cvfold0", "Failed", 0),
        _job("new0", "fake-1-cvfold0", "Completed", 30),
        _job("done1", "fake-1-cvfold1", "Completed", 1),
        _job("done2", "fake-1-cvfold2", "Completed", 2),
        _job("run3", "fake-1-cvfold3", "Running", 3),
        _job("fail4", "fake-1-cvfold4", "Failed", 4),
        _job("other", "fake-1-cvfold2", "Completed", 50, experiment="another"),
    ]

    def download(name, into: Path):
        write_fold(into, config, fold_of[name], data)

    client = FakeClient(FakeJobs(jobs, download))
    with pytest.raises(UserError) as error:
        collect_outputs("tgs-exp", outputs, client=client)
    assert str(error.value).startswith(
        "2 fold run(s) not collected (failed fake-1-cvfold4; unfinished fake-1-cvfold3)"
    )
    assert client.jobs.downloads == [("new0", "outputs"), ("done2", "outputs")]
    out = capsys.readouterr().out
    assert "fake-1-cvfold1: already in" in out
    assert "fake-1-cvfold3: job run3 still Running, not collected" in out
    assert "fake-1-cvfold4: job fail4 Failed, not collected  https://ml.azure.com/runs/fail4" in out
    assert f"python code/ensemble.py --run fake-1 --outputs-folder {outputs}" in out
    assert not (outputs / "azureml" / "downloads" / "new0").exists()
    for fold in (0, 2):
        assert (outputs / "predictions" / f"fake-1-cvfold{fold}-test.npz").is_file()
    summary = run_ensemble(outputs, "fake-1", tmp_path / "data")
    assert summary["folds_used"] == [0, 1, 2] and not summary["complete"]


def test_collect_with_no_jobs_says_so(tmp_path):
    client = FakeClient(FakeJobs([_job("x", "r", "Completed", 0, experiment="another")]))
    with pytest.raises(UserError, match="no jobs found in experiment 'tgs-exp'"):
        collect_outputs("tgs-exp", tmp_path, client=client)


def test_missing_workspace_config_is_one_clear_line(tmp_path, no_network):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"no workspace config found: .*aml_config/config\.json"):
        connect(empty, credential="unused")
    with pytest.raises(UserError, match="placeholders for subscription_id, resource_group"):
        connect(REPO / "aml_config" / "config.json", credential="unused")
    script = [sys.executable, str(REPO / "aml_config" / "test.py")]
    absent = tmp_path / "absent.json"
    done = subprocess.run(
        [*script, "--workspace-config", str(absent)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: {absent}: no such file; no workspace config found")
    assert done.stderr.count("\n") == 1


def test_missing_credentials_give_the_login_message(tmp_path, no_network):
    class NoCredential:
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("refused token for secret-value-123")

        get_token_info = get_token

    client = connect(_workspace_config(tmp_path), credential=NoCredential())
    with pytest.raises(UserError) as error:
        workspace_summary(client)
    assert str(error.value) == LOGIN_MESSAGE and "az login" in LOGIN_MESSAGE
    assert "secret-value-123" not in str(error.value)


def test_workspace_test_script_prints_name_and_location(fake_mlclient, capsys):
    _script_main(REPO / "aml_config" / "test.py")([])
    assert fake_mlclient.from_config_paths == [str(REPO)]
    assert capsys.readouterr().out == "Using Azure ML workspace tgs-ws in location westeurope\n"


def test_upload_data_registers_a_versioned_uri_folder(fake_mlclient, tmp_path, capsys):
    write_data(tmp_path / "data", n_train=3, n_test=1)
    main = _script_main(REPO / "aml_config" / "upload-data.py")
    main(["--data-folder", str(tmp_path)])  # a parent holding data/, as the original's mount
    (asset,) = fake_mlclient.assets
    assert (asset.name, asset.type, asset.version) == ("tgs-data", "uri_folder", None)
    assert Path(asset.path) == tmp_path / "data"
    assert "registered data asset tgs-data version 1" in capsys.readouterr().out
    with pytest.raises(UserError, match="data folder not found"):
        register_data(fake_mlclient, tmp_path / "absent", "tgs-data")


def test_create_cluster_defaults_and_flags(fake_mlclient, capsys):
    main = _script_main(REPO / "aml_config" / "create-cluster.py")
    main([])
    main(["--vm-size", "Standard_NC24ads_A100_v4", "--max-nodes", "2", "--low-priority"])
    default, custom = fake_mlclient.clusters
    assert (default.name, default.size, default.tier) == (
        "tgschallenge",
        "Standard_NC4as_T4_v3",
        "dedicated",
    )
    assert (default.min_instances, default.max_instances) == (0, 4)
    assert default.idle_time_before_scale_down == 600
    assert (custom.size, custom.max_instances, custom.tier) == (
        "Standard_NC24ads_A100_v4",
        2,
        "low_priority",
    )
    assert "cluster tgschallenge: Standard_NC4as_T4_v3, 0 to 4 nodes" in capsys.readouterr().out
    with pytest.raises(UserError, match="Standard_NC6s_v3 is retired"):
        main(["--vm-size", "Standard_NC6s_v3"])
    with pytest.raises(UserError, match="min nodes <= max nodes"):
        main(["--min-nodes", "3", "--max-nodes", "2"])
    assert len(fake_mlclient.clusters) == 2


def test_missing_azure_packages_say_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_azure(name, *args, **kwargs):
        if name.startswith("azure"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_azure)
    with pytest.raises(UserError) as error:
        require_azure()
    assert str(error.value) == INSTALL_HINT and "requirements-azure.txt" in INSTALL_HINT
    with pytest.raises(UserError, match="pip install -r requirements-azure.txt"):
        fold_jobs(RunSpec(CONFIG, "e"))
    with pytest.raises(UserError, match="pip install -r requirements-azure.txt"):
        connect()


def test_job_environment_is_built_from_the_pinned_requirements():
    assert CONDA_FILE.read_text() == render_conda_spec(), (
        "aml_config/environment/conda.yaml is stale: run python aml_config/update-environment.py"
    )
    gpu = [
        line
        for line in (REPO / "requirements.txt").read_text().splitlines()
        + (REPO / "requirements-gpu.txt").read_text().splitlines()
        if line and not line.startswith(("#", "-r"))
    ]
    required = job_requirements()
    assert [line for line in gpu if not line.startswith("mlflow==")] == required[:-2]
    assert required[-2:] == ["mlflow-skinny==3.15.0", "azureml-mlflow==1.62.0.post6"]
    dockerfile = (ENVIRONMENT_FOLDER / "Dockerfile").read_text()
    assert f"FROM {BASE_IMAGE}\n" in dockerfile and "conda.yaml" in dockerfile


def test_fold_metrics_reach_the_job_run(tmp_path, monkeypatch):
    """In a job, MLflow attaches to the run Azure ML started (MLFLOW_RUN_ID) in the job's
    experiment, whatever the config's experiment name is."""
    import mlflow
    import mlflow.tracking.fluent
    from tgssalt.tracking import mlflow_run

    uri = f"sqlite:///{tmp_path / 'job.db'}"
    # set the variable through monkeypatch first: set_tracking_uri exports it too, and it must
    # not outlive this test (later tests would log into this store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("azure-experiment", (tmp_path / "a").as_uri())
    run_id = mlflow.MlflowClient().create_run(experiment).info.run_id
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    with mlflow_run(tmp_path, "fake-1", "fake-1-cvfold0", config_for()) as active:
        active.log_metric("val_score", 0.75)
    run = mlflow.get_run(run_id)
    assert run.info.experiment_id == experiment and run.data.metrics == {"val_score": 0.75}
    assert run.data.params["name"] == "fake-%s" and run.info.run_name == "fake-1-cvfold0"
