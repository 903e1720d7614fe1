"""`pdopt export`: a plan as deployment manifests (Kubernetes, Dynamo, llm-d, SGLang router),
docs/cli.md."""

from __future__ import annotations

import click
import yaml

from pdopt.cli.common import handle_errors
from pdopt.export import ENGINES, TARGETS, ExportError, ExportOptions, export_plan, write_export
from pdopt.inputfiles import FileTooLargeError, InputFileError, read_limited

#: A GPU type -> node labels mapping is a few lines per GPU type.
MAX_LABELS_BYTES = 1024 * 1024


def _pairs(values: tuple[str, ...], flag: str, example: str) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ExportError(f"{flag} '{item}': expected {example}")
        out[name.strip()] = value.strip()
    return out


def gpu_labels(pairs: tuple[str, ...], path: str | None) -> dict[str, dict[str, str]]:
    """GPU type -> node selector, from a YAML file (`H100: {nvidia.com/gpu.product: ...}`) and
    then --gpu-label GPU=KEY=VALUE flags (which add to or replace the file's labels)."""
    labels: dict[str, dict[str, str]] = {}
    if path is not None:
        try:  # a regular file of bounded size (a FIFO is refused without blocking)
            data = yaml.safe_load(read_limited(path, MAX_LABELS_BYTES, "GPU label files")
                                  .decode("utf-8"))
        except FileTooLargeError as e:
            raise ExportError(f"{path}: {e}") from None
        except InputFileError as e:
            raise ExportError(f"{path}: cannot read file: {e}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ExportError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ExportError(f"{path}: expected a mapping GPU type -> {{label: value}}")
        for gpu, selector in data.items():
            if not isinstance(selector, dict) or not selector or not all(
                    isinstance(k, str) and isinstance(v, str | int | float | bool)
                    for k, v in selector.items()):
                raise ExportError(f"{path}: {gpu}: expected a mapping of node labels to values")
            labels[str(gpu)] = {k: str(v) for k, v in selector.items()}
    for item in pairs:
        gpu, sep, rest = item.partition("=")
        key, sep2, value = rest.partition("=")
        if not (sep and sep2 and gpu.strip() and key.strip() and value.strip()):
            raise ExportError(f"--gpu-label '{item}': expected GPU=KEY=VALUE")
        labels[gpu.strip()] = {**labels.get(gpu.strip(), {}), key.strip(): value.strip()}
    return labels


@click.command("export")
@click.argument("plan_path", metavar="PLAN.json", type=click.Path(dir_okay=False))
@click.option("--to", "target", type=click.Choice(list(TARGETS)), required=True,
              help="What to write: Kubernetes Deployments and Services, Dynamo "
                   "DynamoGraphDeployments, llm-d Helm values, or SGLang router commands.")
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False), default=None,
              help="The scenario the plan was solved from: decode batch caps and KV-cache dtypes "
                   "(without it they are left to the engine).")
@click.option("--output", "-o", "folder", type=click.Path(), default=None,
              help="Write the files into this folder (created if missing) instead of stdout.")
@click.option("--engine", type=click.Choice(ENGINES), default="vllm", show_default=True,
              help="Engine of the kubernetes and dynamo targets (llm-d runs vLLM, "
                   "sglang-router SGLang).")
@click.option("--image", default=None, help="Container image [default: a placeholder].")
@click.option("--model-path", "model_paths", multiple=True, metavar="MODEL=PATH",
              help="Path or Hugging Face id of a model of the plan (repeatable) [default: the "
                   "model's name when it is an org/name id, else a placeholder].")
@click.option("--gpu-label", "gpu_label_pairs", multiple=True, metavar="GPU=KEY=VALUE",
              help="Node label selecting a GPU type's nodes (repeatable), e.g. "
                   "H100=nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3.")
@click.option("--gpu-labels", "gpu_labels_path", type=click.Path(dir_okay=False), default=None,
              help="YAML file: GPU type -> {node label: value}.")
@click.option("--namespace", default=None, help="Kubernetes namespace of the objects.")
@handle_errors
def export(plan_path: str, target: str, scenario_path: str | None, folder: str | None,
           engine: str, image: str | None, model_paths: tuple[str, ...],
           gpu_label_pairs: tuple[str, ...], gpu_labels_path: str | None,
           namespace: str | None) -> None:
    """Turn a plan (`pdopt solve --format json`) into manifests a platform team applies.

    Values pdopt cannot know (image, model path, host names, node label values) are written as
    `<FILL: ...>`; README.md lists them and the plan's routing shares.

    Exit codes: 0 written; 2 invalid input (plan, scenario, flags) or a folder that cannot be
    written; 130 interrupted.
    """
    from pdopt.cli.simulate import read_plan

    options = ExportOptions(
        engine=engine, image=image,  # type: ignore[arg-type]
        model_paths=_pairs(model_paths, "--model-path", "MODEL=PATH"),
        gpu_labels=gpu_labels(gpu_label_pairs, gpu_labels_path), namespace=namespace)
    plan = read_plan(plan_path)
    scenario = raw = None
    if scenario_path is not None:
        from pdopt.scenario.loading import load_scenario
        from pdopt.scenario.prepare import prepare

        raw = load_scenario(scenario_path)
        scenario = prepare(scenario_path).scenario
    try:
        files = export_plan(plan, target, options, scenario=scenario, raw=raw)
    except ExportError as e:
        raise ExportError(f"{plan_path}: {e}") from None
    if folder is None:
        click.echo("\n".join(f"# ==> {f.name} <==\n{f.text.rstrip()}\n" for f in files), nl=False)
        return
    for path in write_export(files, folder):
        click.echo(f"wrote {path}", err=True)
