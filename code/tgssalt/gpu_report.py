"""The human-readable report `code/gpu_check.py` prints above its JSON line."""


def format_environment(env: dict, precisions: list[str]) -> str:
    """Backend, devices, precision and versions: the first lines of the report."""
    timed = f"timed in {', '.join(precisions)}; " if precisions else ""
    versions = ", ".join(f"{name} {v or '-'}" for name, v in env["versions"].items())
    return "\n".join(
        [
            f"gpu check: backend {env['backend']}, {'GPU' if env['gpu'] else 'no GPU'}",
            f"devices:   {', '.join(env['devices'])}",
            f"precision: {timed}dtype policy now {env['dtype_policy']}; "
            f"float32 matmuls: {env['float32_matmul']}",
            f"versions:  {versions} ('-': not installed)",
        ]
    )


def _img_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_speed(summary: dict) -> list[str]:
    """The speed table: one line per config x batch x precision, then why smp is absent."""
    lines = [
        f"speed (img/s after a warm-up, median of {summary['repeats']} repeat(s) of "
        f"{summary['steps']} training steps; prediction with TTA {summary['tta']}):",
        f"{'config':40s} {'px':>4s} {'batch':>5s} {'pred':>5s} {'precision':15s} "
        f"{'train':>9s} {'predict':>9s} {'smp train':>9s} {'smp pred':>9s}",
    ]
    notes = {}
    for row in summary["speed"]:
        lines.append(
            f"{row['config'][:40]:40s} {row['size']:4d} {row['batch']:5d} "
            f"{row['predict_batch']:5d} {row['precision']:15s} {_img_s(row['train_img_s']):>9s} "
            f"{_img_s(row['predict_img_s']):>9s} {_img_s(row.get('peer_train_img_s')):>9s} "
            f"{_img_s(row.get('peer_predict_img_s')):>9s}"
        )
        notes[row["config"]] = row["smp"]
    lines += [f"  smp for {name}: {note}" for name, note in notes.items()]
    return lines


def format_fold(fold: dict) -> str:
    """One line: the fold's minutes, score and training and test-prediction speeds."""
    stages = "; ".join(
        f"{stage} {fold[f'{stage}_epochs']} epochs at "
        f"{fold[f'{stage}_train_images_per_second']:.1f} img/s"
        for stage in ("stage1", "stage2")
        if f"{stage}_epochs" in fold
    )
    return (
        f"fold: {fold['run']} on {fold['data']}: {fold['minutes']:.2f} min, validation score "
        f"{fold['validation_score']:.4f}; {stages} (validation included); "
        f"{fold['test_images']} test images at {fold['test_predict_images_per_second']:.0f} img/s"
    )


def format_predict(predict: dict) -> str:
    """One line: N images x folds with TTA, minutes and img/s."""
    return (
        f"predict: {predict['images']} images x {predict['folds']} folds, TTA {predict['tta']}: "
        f"{predict['minutes']:.2f} min ({predict['load_seconds']:.1f} s building/loading "
        f"{predict['models']}), {predict['img_s']:.0f} img/s per fold model, "
        f"{predict['test_img_s']:.0f} test images/s"
    )


def format_report(summary: dict) -> str:
    """Everything measured, in the order it ran, and the total time."""
    lines = format_speed(summary) if "speed" in summary else []
    if "fold" in summary:
        lines.append(format_fold(summary["fold"]))
    if "predict" in summary:
        lines.append(format_predict(summary["predict"]))
    lines.append(f"total: {summary['seconds']:.1f} s")
    return "\n".join(lines)
