"""Azure ML scale-out (SDK v2), offline: no network, no credentials.

A stand-in `MLClient` (patched in where the scripts call `MLClient.from_config`) records what
would be created; the `--dry-run` YAMLs are read back with `azure.ai.ml.load_job`; collecting
runs against a stand-in jobs API whose downloads write fake fold outputs.
"""

import builtins
import datetime
import json
import logging
import os
import re
import runpy
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import azure.ai.ml
import azure.core.credentials
import azure.identity
import pytest
import yaml
from azure.ai.ml import load_job
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
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

    def __init__(self, jobs=None, existing=None):
        self.jobs = jobs or FakeJobs()
        self.clusters, self.assets, self.uploaded = [], [], []
        self.existing = existing  # a cluster already in the workspace
        # Azure answers with the cluster as it is; the SDK drops an idle time it does not report
        poller = SimpleNamespace(result=lambda: self._as_returned(self.clusters[-1]))
        self.compute = SimpleNamespace(
            begin_create_or_update=lambda c: self.clusters.append(c) or poller, get=self._get
        )
        self.data = SimpleNamespace(create_or_update=self._create_data)
        workspace = SimpleNamespace(name="tgs-ws", location="westeurope")
        self.workspaces = SimpleNamespace(get=lambda name: workspace)

    @staticmethod
    def _as_returned(cluster):
        keys = ("name", "size", "min_instances", "max_instances", "tier")
        return SimpleNamespace(
            **{key: getattr(cluster, key) for key in keys}, idle_time_before_scale_down=None
        )

    def _get(self, name):
        if self.existing is None or self.existing.name != name:
            raise ResourceNotFoundError(f"compute {name} not found")
        return self.existing

    def _create_data(self, data):
        self.assets.append(data)
        root = Path(data.path)  # a staging folder that exists only during the upload
        self.uploaded = sorted(
            p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
        )
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
            "python -m tgssalt.azureml.gpu && python train_fold.py "
            "--config-file train-config/test/unet-resnet-test.json "
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
        assert output.path == (
            "azureml://datastores/workspaceblobstore/paths/tgssalt/tgs-test/"
            f"unet-resnet-test-1-cvfold{fold}/"
        )
        assert job.environment.image == BASE_IMAGE
        pip = job.environment.conda_file["dependencies"][-1]["pip"]
        assert "jax[cuda12]==0.10.2" in pip and "azureml-mlflow==1.62.0.post6" in pip
        assert job.environment_variables == {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cuda"}
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
        (
            {"config_file": "code/train-config/best64-symmetric-lovasz.json"},
            r"key 'init.name' reads 'best64-%s' from the outputs folder",
        ),
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
        assert job.outputs["outputs"].path.endswith(f"/tgs-dry/unet-resnet-test-1-cvfold{fold}/")
        assert job.environment_variables == {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cuda"}
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
    template = REPO / "aml_config" / "config.json"  # no .azureml/ in this checkout
    assert fake_mlclient.from_config_paths == [str(template)]
    assert capsys.readouterr().out == (
        f"workspace config: {template}\nUsing Azure ML workspace tgs-ws in location westeurope\n"
    )


def test_upload_data_registers_a_versioned_uri_folder(fake_mlclient, tmp_path, capsys):
    write_data(tmp_path / "data", n_train=3, n_test=1)
    main = _script_main(REPO / "aml_config" / "upload-data.py")
    main(["--data-folder", str(tmp_path)])  # a parent holding data/, as the original's mount
    (asset,) = fake_mlclient.assets
    assert (asset.name, asset.type, asset.version) == ("tgs-data", "uri_folder", None)
    assert not Path(asset.path).exists()  # the staging folder is gone after the upload
    assert "registered data asset tgs-data version 1" in capsys.readouterr().out
    with pytest.raises(UserError, match="data folder not found"):
        register_data(fake_mlclient, tmp_path / "absent", "tgs-data")


def test_upload_data_sends_only_what_training_reads(fake_mlclient, tmp_path, capsys):
    """Not the Kaggle zips, not data/demo/, not stray files; data/demo/ only when asked."""
    data = write_data(tmp_path / "data", n_train=2, n_test=1)
    (tmp_path / "data" / "depths.csv").write_text("id,z\n")
    for extra in ("train.zip", "test.zip", "competition_data.zip", "notes.txt", "train/x.zip"):
        (tmp_path / "data" / extra).write_bytes(b"zip")
    write_data(tmp_path / "data" / "demo", n_train=4, n_test=2, seed=1)
    main = _script_main(REPO / "aml_config" / "upload-data.py")
    main(["--data-folder", str(tmp_path / "data")])
    pngs = [f"train/{kind}/{i}.png" for kind in ("images", "masks") for i in data["train_ids"]]
    expected = ["depths.csv", "sample_submission.csv", "train.csv", *pngs]
    expected += [f"test/images/{i}.png" for i in data["test_ids"]]
    assert fake_mlclient.uploaded == sorted(expected)
    out = capsys.readouterr().out
    assert "uploading 8 files" in out
    assert "not uploaded: competition_data.zip, demo, notes.txt, test.zip, train.zip\n" in out
    main(["--data-folder", str(tmp_path / "data" / "demo"), "--name", "tgs-demo"])
    assert len(fake_mlclient.uploaded) == 2 + 4 * 2 + 2
    pngs = [name for name in fake_mlclient.uploaded if name.endswith(".png")]
    assert all("/t1x" in name or "/s1x" in name for name in pngs)  # the demo's ids only


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
    out = capsys.readouterr().out
    assert "cluster tgschallenge: Standard_NC4as_T4_v3, 0 to 4 nodes (dedicated)" in out
    assert "(low_priority)" in out  # the tier Azure reports, not the one asked for
    assert "idle time not reported" in out and " 0 s" not in out
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


@pytest.fixture
def job_run(tmp_path, monkeypatch) -> str:
    """An Azure ML job's MLflow set-up: a tracking store, an experiment and a run that the job
    attaches to (MLFLOW_RUN_ID); returns the run's id."""
    import mlflow
    import mlflow.tracking.fluent

    uri = f"sqlite:///{tmp_path / 'job.db'}"
    # set the variable through monkeypatch first: set_tracking_uri exports it too, and it must
    # not outlive this test (later tests would log into this store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("azure-experiment", (tmp_path / "a").as_uri())
    run_id = mlflow.MlflowClient().create_run(experiment).info.run_id
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    return run_id


def test_fold_metrics_reach_the_job_run(tmp_path, job_run):
    """In a job, MLflow attaches to the run Azure ML started (MLFLOW_RUN_ID) in the job's
    experiment, whatever the config's experiment name is."""
    import mlflow
    from tgssalt.tracking import mlflow_run

    run_id = job_run
    experiment = mlflow.get_experiment_by_name("azure-experiment").experiment_id
    with mlflow_run(tmp_path, "fake-1", "fake-1-cvfold0", config_for().to_dict()) as active:
        active.log_metric("val_score", 0.75)
    run = mlflow.get_run(run_id)
    assert run.info.experiment_id == experiment and run.data.metrics == {"val_score": 0.75}
    assert run.data.params["name"] == "fake-%s" and run.info.run_name == "fake-1-cvfold0"


def test_existing_cluster_size_and_tier_are_refused_not_reported_as_changed(capsys):
    from tgssalt.azureml.workspace import cluster_report, cluster_spec, create_cluster

    existing = cluster_spec("tgschallenge", "Standard_NC4as_T4_v3", 0, 4, True, 600)
    client = FakeClient(existing=existing)
    with pytest.raises(UserError) as error:
        create_cluster(
            client, cluster_spec("tgschallenge", "Standard_NC8as_T4_v3", 0, 4, False, 60)
        )
    assert str(error.value).startswith(
        "cluster tgschallenge exists with VM size Standard_NC4as_T4_v3 (asked "
        "Standard_NC8as_T4_v3), tier low_priority (asked dedicated): Azure cannot change"
    )
    assert "delete it to change" in str(error.value) and not client.clusters
    updated = create_cluster(client, cluster_spec("tgschallenge", existing.size, 1, 2, True, 60))
    assert cluster_report(updated) == (
        "cluster tgschallenge: Standard_NC4as_T4_v3, 1 to 2 nodes (low_priority), idle time not "
        "reported; its VM size and tier cannot change (delete it to change), its node counts "
        "and idle time can"
    )
    updated.idle_time_before_scale_down = 120
    assert "idle nodes released after 120 s" in cluster_report(updated)


def _config_json(folder: Path, workspace: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ids = {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "rg"}
    (folder / "config.json").write_text(json.dumps({**ids, "workspace_name": workspace}))
    return folder / "config.json"


def test_workspace_config_is_the_repositorys_never_a_decoy_above_it(tmp_path, no_network, capsys):
    """The SDK's own search, from the repository, finds another project's .azureml/ first."""
    from azure.ai.ml import MLClient

    _config_json(tmp_path / ".azureml", "decoy")
    repo = tmp_path / "repo"
    template = _config_json(repo / "aml_config", "tgs-ws")
    assert MLClient.from_config("unused", path=str(repo)).workspace_name == "decoy"
    assert connect(credential="unused", root=repo).workspace_name == "tgs-ws"
    assert capsys.readouterr().out == f"workspace config: {template}\n"
    downloaded = _config_json(repo / ".azureml", "downloaded")  # the portal's file wins
    assert connect(credential="unused", root=repo).workspace_name == "downloaded"
    assert connect(repo, credential="unused").workspace_name == "downloaded"  # a folder given
    assert capsys.readouterr().out == f"workspace config: {downloaded}\n" * 2
    with pytest.raises(UserError, match="no workspace config found"):
        connect(credential="unused", root=tmp_path / "empty")


def test_job_environment_builds_unattended_on_a_dated_image():
    spec = yaml.safe_load(render_conda_spec())
    assert spec["channels"] == ["conda-forge", "nodefaults"]  # no Anaconda defaults (ToS)
    assert CONDA_FILE.read_text() == render_conda_spec()
    name, tag = BASE_IMAGE.rsplit(":", 1)
    assert re.fullmatch(r"20\d{6}\.v\d+", tag), BASE_IMAGE  # dated, never :latest
    assert "cuda" not in name  # jax[cuda12] brings its own CUDA libraries
    assert "jax[cuda12]==" in " ".join(spec["dependencies"][-1]["pip"])


def test_jobs_fail_at_once_when_jax_cannot_use_cuda(tmp_path):
    """Each fold job starts with the GPU check under JAX_PLATFORMS=cuda: here (no GPU) it stops
    the job in one line, before train_fold.py, instead of training on the CPU."""
    from tgssalt.azureml.environment import JOB_ENVIRONMENT_VARIABLES

    assert JOB_ENVIRONMENT_VARIABLES["JAX_PLATFORMS"] == "cuda"
    (job,) = fold_jobs(RunSpec(CONFIG, "e", folds=[0])).values()
    assert job.environment_variables["JAX_PLATFORMS"] == "cuda"
    check, _, train = job.command.partition(" && ")
    assert check == "python -m tgssalt.azureml.gpu" and train.startswith("python train_fold.py")
    env = {**os.environ, **job.environment_variables}
    check = check.replace("python", shlex.quote(sys.executable), 1)  # this environment's
    shell = check + " && touch " + str(tmp_path / "trained")  # train_fold.py's place
    done = subprocess.run(
        shell, shell=True, cwd=CODE, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 2 and not (tmp_path / "trained").exists()
    assert (
        done.stderr.startswith("error: JAX could not start CUDA") and done.stderr.count("\n") == 1
    )
    assert "stopping rather than training on the CPU" in done.stderr
    cpu = {**env, "JAX_PLATFORMS": "cpu"}  # JAX starts, but on the CPU: refused as well
    done = subprocess.run(check, shell=True, cwd=CODE, env=cpu, capture_output=True, text=True)
    assert done.returncode == 2 and "JAX found only a cpu device" in done.stderr


def test_a_fold_has_one_output_path_per_experiment_and_run():
    first = fold_jobs(RunSpec(CONFIG, "exp-a", folds=[0, 1]))
    again = fold_jobs(RunSpec(CONFIG, "exp-a", folds=[1]))  # fold 1 resubmitted
    other = fold_jobs(RunSpec(CONFIG, "exp-b", folds=[1]))
    path = {run: job.outputs["outputs"].path for run, job in first.items()}
    run1 = "unet-resnet-test-1-cvfold1"
    assert again[run1].outputs["outputs"].path == path[run1]
    assert path[run1] == f"azureml://datastores/workspaceblobstore/paths/tgssalt/exp-a/{run1}/"
    assert len(set(path.values())) == 2 and other[run1].outputs["outputs"].path != path[run1]


def test_a_lock_left_by_a_different_finished_job_is_stale(tmp_path, monkeypatch, capsys):
    from tgssalt.lock import fold_lock, is_stale

    me = {"host": "node-2", "pid": 1, "job": "job-8"}
    holder = {"host": "node-1", "pid": 1, "job": "job-7"}
    assert is_stale(holder, me, job_finished={"job-7": True}.get)
    assert not is_stale(holder, me, job_finished={"job-7": False}.get)
    assert not is_stale(holder, {**me, "job": ""}, job_finished={"job-7": True}.get)
    # the default asks MLflow (in a job, Azure ML's tracking server) for the run's status
    uri = f"sqlite:///{tmp_path / 'job.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow

    mlflow.set_tracking_uri(uri)  # as in a job (earlier tests may have set another)
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("e", (tmp_path / "a").as_uri())
    failed, running = (client.create_run(experiment).info.run_id for _ in range(2))
    client.set_terminated(failed, "FAILED")
    lock = tmp_path / "models" / ".lock"
    lock.parent.mkdir()
    monkeypatch.setenv("AZUREML_RUN_ID", "job-8")
    lock.write_text(json.dumps({**holder, "job": running}))
    with pytest.raises(UserError, match="already being trained"), fold_lock(lock, "r"):
        pass
    lock.write_text(json.dumps({**holder, "job": failed}))
    with fold_lock(lock, "r"):
        assert json.loads(lock.read_text())["job"] == "job-8"
    assert "taking over the lock" in capsys.readouterr().out
    lock.write_text(json.dumps({**holder, "job": "no-such-run"}))  # unknown: assume it runs
    with pytest.raises(UserError, match="already being trained"), fold_lock(lock, "r"):
        pass


def test_a_restarted_job_logs_only_the_params_its_run_lacks(tmp_path, monkeypatch, job_run):
    import mlflow
    from tgssalt.tracking import mlflow_run

    run_id = job_run
    logged, real = [], mlflow.log_params
    monkeypatch.setattr(mlflow, "log_params", lambda params: logged.append(params) or real(params))
    config = config_for().to_dict()
    with mlflow_run(tmp_path, "fake-1", "fake-1-cvfold0", config):
        pass
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)  # end_run unset it; the restarted job has it
    with mlflow_run(tmp_path, "fake-1", "fake-1-cvfold0", config):  # the job restarted
        pass
    assert len(logged[0]) > 10 and logged[1] == {}
    assert mlflow.get_run(run_id).data.params["name"] == "fake-%s"


def test_the_originals_command_line_runs_from_code(monkeypatch, tmp_path, capsys):
    """`python azureml-submit-run.py --config-file train-config\\unet-resnet.json
    --entry-script train-fold.py --experiment-name production`, from code/ (Windows paths)."""
    monkeypatch.chdir(CODE)
    main = _script_main(CODE / "azureml-submit-run.py")
    original = r"--config-file train-config\unet-resnet.json --entry-script train-fold.py"
    main([*original.split(), "--experiment-name", "production", "--dry-run",
          "--outputs-folder", str(tmp_path)])  # fmt: skip
    written = sorted((tmp_path / "azureml" / "production").glob("*.yml"))
    assert [path.name for path in written] == [f"unet-resnet-1-cvfold{k}.yml" for k in range(4)]
    job = load_job(written[0])
    assert job.command.startswith(
        "python -m tgssalt.azureml.gpu && python train_fold.py --config-file "
        "train-config/unet-resnet.json --cv-currentfold 0 "
    )
    assert "dry run: 4 job(s) written" in capsys.readouterr().out


def test_sign_in_falls_back_to_browser_then_device_code(monkeypatch):
    """As the v1 SDK and Microsoft's examples: az login / environment first, then a browser,
    then a device code; at no terminal, only the first."""
    from azure.identity import CredentialUnavailableError
    from tgssalt.azureml.workspace import sign_in_credential

    tried = []

    def stand_in(name, works, error=CredentialUnavailableError):
        class Credential:
            def get_token(self, *scopes, **kwargs):
                tried.append(name)
                if not works:
                    raise error(f"{name} failed")
                return azure.core.credentials.AccessToken(f"token from {name}", 2**40)

        return Credential

    def install(default, browser):
        fail = ClientAuthenticationError  # what these raise when they try and fail
        monkeypatch.setattr(
            azure.identity, "DefaultAzureCredential", stand_in("default", default, fail)
        )
        monkeypatch.setattr(
            azure.identity, "InteractiveBrowserCredential", stand_in("browser", browser, fail)
        )
        monkeypatch.setattr(azure.identity, "DeviceCodeCredential", stand_in("device code", True))

    install(default=False, browser=False)
    assert sign_in_credential(True).get_token("scope").token == "token from device code"
    assert tried == ["default", "browser", "device code"]
    tried.clear()
    install(default=False, browser=True)
    assert sign_in_credential(True).get_token("scope").token == "token from browser"
    assert tried == ["default", "browser"]
    tried.clear()
    install(default=True, browser=True)
    assert sign_in_credential(True).get_token("scope").token == "token from default"
    assert tried == ["default"]
    install(default=False, browser=True)
    with pytest.raises(ClientAuthenticationError):
        sign_in_credential(False).get_token("scope")  # no terminal: nothing waits for a person


def test_recipe_pipeline_runs_folds_in_parallel_then_the_ensemble(tmp_path, no_network, capsys):
    paths = submit_run(RunSpec(CONFIG, "tgs-pipe", folds=[0, 2]), tmp_path, True, pipeline=True)
    assert [path.name for path in paths] == ["unet-resnet-test-1-pipeline.yml"]
    assert "dry run: 1 job(s) written" in capsys.readouterr().out
    pipeline = load_job(paths[0])
    assert pipeline.type == "pipeline" and pipeline.experiment_name == "tgs-pipe"
    assert sorted(pipeline.jobs) == ["ensemble", "fold0", "fold2"]
    raw = yaml.safe_load(paths[0].read_text())
    for k in (0, 2):
        step = raw["jobs"][f"fold{k}"]
        assert step["inputs"] == {"data": {"path": "${{parent.inputs.data}}"}, "fold": k}
        assert step["outputs"]["outputs"]["path"] == (
            f"azureml://datastores/workspaceblobstore/paths/tgssalt/tgs-pipe/unet-resnet-test-1-cvfold{k}/"
        )
        component = pipeline.jobs[f"fold{k}"].component
        assert (paths[0].parent / component.code).resolve() == CODE
        assert "--cv-currentfold ${{inputs.fold}}" in component.command
        assert component.environment_variables["JAX_PLATFORMS"] == "cuda"
    ensemble = raw["jobs"]["ensemble"]
    assert ensemble["inputs"]["fold2"] == {"path": "${{parent.jobs.fold2.outputs.outputs}}"}
    assert ensemble["outputs"] == {"submission": "${{parent.outputs.submission}}"}
    command = ensemble["component"]["command"]
    assert "python ensemble.py --run unet-resnet-test-1 --data-folder ${{inputs.data}}" in command
    # two of the config's four folds: the ensemble's files are tagged with them (layout)
    assert "cp gathered/submissions/unet-resnet-test-1-folds0_2-ensemble-submission.csv" in command
    assert "gathered/models/unet-resnet-test-1-folds0_2-ensemble.json" in command
    assert raw["outputs"] == {"submission": {"type": "uri_folder"}}
    assert raw["inputs"]["data"]["path"] == "azureml:tgs-data@latest"
    assert raw["settings"]["default_compute"] == "azureml:tgschallenge"


def test_collect_quiets_the_sdks_large_download_warning(tmp_path, caplog):
    data = write_data(tmp_path / "data")
    config = config_for(folds=2)
    helper = logging.getLogger("azure.ai.ml._artifacts._blob_storage_helper")

    def download(name, into: Path):
        for _ in range(3):  # once per file past 100 MB in the SDK
            helper.warning("exceeds 100 MB ... use AzCopy")
        write_fold(into, config, 0, data)

    client = FakeClient(FakeJobs([_job("j0", "fake-1-cvfold0", "Completed", 0)], download))
    # Captured on the SDK's logger itself: whether its records reach the root logger depends on
    # what other libraries loaded in this process did to the "azure" loggers' propagation.
    helper.addHandler(caplog.handler)
    try:
        collect_outputs("tgs-exp", tmp_path / "outputs", client=client)
        assert "AzCopy" not in caplog.text
        helper.warning("after collecting: AzCopy")  # the level is restored
        assert "after collecting" in caplog.text
    finally:
        helper.removeHandler(caplog.handler)


def test_resume_checkpoint_is_never_half_written_on_the_mount(tmp_path, monkeypatch):
    """A copy that dies part-way (the node lost mid-copy) leaves the last checkpoint whole."""
    import shutil

    import numpy as np
    from tgssalt import resume

    target = tmp_path / "models" / "r-stage1.resume.npz"
    target.parent.mkdir()
    np.savez(target, state_json=np.array('{"next_epoch": 3}'))
    before = target.read_bytes()
    new = tmp_path / "new.npz"
    np.savez(new, state_json=np.array('{"next_epoch": 4}'), model_0=np.zeros(1000))

    def dies_midway(source, destination):
        Path(destination).write_bytes(Path(source).read_bytes()[:100])
        raise OSError("node lost")

    monkeypatch.setattr(shutil, "copyfile", dies_midway)
    with pytest.raises(OSError, match="node lost"):
        resume.copy_verified(new, target)
    assert target.read_bytes() == before and os.listdir(target.parent) == [target.name]

    def copies_short(source, destination):  # a write that reports success but is short
        Path(destination).write_bytes(Path(source).read_bytes()[:100])

    monkeypatch.setattr(shutil, "copyfile", copies_short)
    with pytest.raises(OSError, match="copied short"):
        resume.copy_verified(new, target)
    assert target.read_bytes() == before
    monkeypatch.undo()
    resume.copy_verified(new, target)
    assert resume.load_state(target).record.next_epoch == 4


def test_collect_finds_the_fold_steps_of_a_recipe_pipeline(tmp_path, capsys):
    data = write_data(tmp_path / "data")
    config = config_for(folds=2)
    pipeline = SimpleNamespace(**{**vars(_job("p1", "p1", "Completed", 5)), "type": "pipeline"})
    steps = [_job(f"step{k}", f"fake-1-cvfold{k}", "Completed", k) for k in (0, 1)]
    ensemble = _job("step-e", "ensemble the folds", "Completed", 3)
    for job in [*steps, ensemble]:
        job.tags, job.experiment_name = {}, None  # steps carry no run tag and no experiment

    class PipelineJobs(FakeJobs):
        def list(self, parent_job_name=None):
            return iter([*steps, ensemble] if parent_job_name == "p1" else [pipeline])

    jobs = PipelineJobs(
        on_download=lambda name, into: write_fold(into, config, int(name[-1]), data)
    )
    report = collect_outputs("tgs-exp", tmp_path / "outputs", client=FakeClient(jobs))
    assert report["downloaded"] == ["fake-1-cvfold0", "fake-1-cvfold1"] and not report["failed"]
    assert jobs.downloads == [("step0", "outputs"), ("step1", "outputs")]
    assert "az ml job download --name p1 --output-name submission" in capsys.readouterr().out
