"""The tables generated from the code: the README's families, the model table, what the SE gates
cost, the published weights, the attention kinds and the training program's flags.
`python tools/update_readme.py` writes them (`tools.sections` finds the page that holds each)."""

import re

from keras_attn import attention, weights
from keras_attn.applications import constructors, list_models, specs

# SE networks whose cost the model docs report against the same network with gate=None.
GATE_OVERHEAD_NAMES = (
    "seresnet50", "seresnext50_32x4d", "senet154", "se_inception_v3", "se_inception_resnet_v2",
    "se_bn_inception",
)
# What the SENet paper reports (Section 5: ~2.5M parameters on ResNet-50's ~25M).
_PAPER_OVERHEAD = {"seresnet50": "~10%"}


def models_table(param_counts):
    """One row per registry name: constructor, parameters, input size, family, paper.

    Args:
        param_counts: `{name: count_params()}` for every name
            (`keras_attn.applications.registry.count_parameters`).
    """
    names = {function.registry_name: function.__name__ for function in constructors.CONSTRUCTORS}
    lines = [
        "| name | constructor | parameters | input size | family | paper |",
        "|---|---|---:|---:|---|---|",
    ]
    for name in list_models():
        spec = specs.SPECS[name]
        paper = specs.PAPERS[spec.paper]
        constructor = f"`{names[name]}`" if name in names else ""
        lines.append(
            f"| `{name}` | {constructor} | {param_counts[name]:,} | {spec.default_size} "
            f"| {spec.family} | [{paper.citation}]({paper.url}) |"
        )
    return "\n".join(lines) + "\n"


def _millions(count):
    return f"{count / 1e6:.1f}M"


def families_table(param_counts):
    """One row per family (in the table's order): its networks (smallest first), their
    parameter range, the best published top-1 (`name.tag`) and the papers.

    Args:
        param_counts: `{name: count_params()}` for every name.
    """
    families = {}
    for spec in specs.SPECS.values():
        families.setdefault(spec.family, []).append(spec.name)
    lines = [
        "| family | networks | parameters | best published top-1 | paper |",
        "|---|---|---:|---|---|",
    ]
    for family, names in families.items():
        names = sorted(names, key=lambda name: (param_counts[name], name))
        low, high = (_millions(param_counts[name]) for name in (names[0], names[-1]))
        # ImageNet-12k classifiers have no ImageNet-1k top-1.
        top1 = {f"{name}.{tag}": weights.tag_info(name, tag)["top1"]
                for name in names for tag in weights.tags(name)}
        published = [(value, key) for key, value in top1.items() if value is not None]
        best = "{:.2f} (`{}`)".format(*max(published)) if published else "none published"
        papers = dict.fromkeys(specs.PAPERS[specs.SPECS[name].paper]
                               for name in specs.SPECS if name in names)
        lines.append(
            f"| {family} | {', '.join(f'`{name}`' for name in names)} "
            f"| {low if low == high else f'{low}-{high}'} | {best} "
            f"| {', '.join(f'[{paper.citation}]({paper.url})' for paper in papers)} |"
        )
    return "\n".join(lines) + "\n"


def gate_overhead_table(param_counts, ungated_counts):
    """What the SE gates cost in parameters.

    Args:
        param_counts: `{name: count_params()}` with the gates.
        ungated_counts: `{name: count_parameters(name, gate=None)}`.
    """
    lines = [
        "| name | parameters | without gates | SE overhead | paper |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in GATE_OVERHEAD_NAMES:
        gated, ungated = param_counts[name], ungated_counts[name]
        lines.append(
            f"| `{name}` | {gated:,} | {ungated:,} | {100 * (gated / ungated - 1):.1f}% "
            f"| {_PAPER_OVERHEAD.get(name, '')} |"
        )
    return "\n".join(lines) + "\n"


def weights_table():
    """The published weights: one row per network and tag. ImageNet-12k classifiers (11821
    classes) have no ImageNet-1k top-1 or top-5."""
    lines = [
        "| name | tag | classes | top-1 | top-5 | size | crop | interpolation | license |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for name in weights.names_with_weights():
        tags = weights.tags(name)
        for tag in tags:
            info = weights.tag_info(name, tag)
            default = " (imagenet)" if tag == tags[0] else ""
            top1, top5, size = (
                ("–", "–", info["input_size"]) if info["top1"] is None else
                (f"{info['top1']:.2f}", f"{info['top5']:.2f}", info["eval_size"]))
            lines.append(
                f"| `{name}` | `{tag}`{default} | {info['num_classes']} | {top1} | {top5} "
                f"| {size} | {info['crop_pct']} | {info['interpolation']} "
                f"| {info['license'] or 'null'} |"
            )
    return "\n".join(lines) + "\n"


def attention_table():
    """The attention kinds of `keras_attn.attention`: slot, layer, what it computes, paper,
    timm module."""
    lines = [
        "| kind | slot | layer | what it computes | paper | timm |",
        "|---|---|---|---|---|---|",
    ]
    for kind in attention.kinds():
        timm = f"`{kind.timm_module}`" if kind.timm_module else ""
        lines.append(
            f"| `{kind.name}` | {kind.slot} | `{kind.layer.__name__}` | {kind.description} "
            f"| [{kind.paper.citation}]({kind.paper.url}) | {timm} |"
        )
    return "\n".join(lines) + "\n"


def training_flags_table():
    """The flags of `keras-attn train`, in definition order: default and help text."""
    from absl import flags

    from keras_attn.training.flags import define_flags

    values = flags.FlagValues()
    define_flags(values)
    lines = ["| flag | default | what it sets |", "|---|---|---|"]
    for name in values:
        flag = values[name]
        default = flag.default_as_str.strip("'") if flag.default is not None else ""
        # absl prefixes an enum's help with "<a|b>: "; the help text names the choices.
        help_text = re.sub(r"^<[^>]*>: ", "", flag.help)
        help_text = help_text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
        if getattr(flag.parser, "enum_values", None):
            help_text += f" Choices: {', '.join(f'`{v}`' for v in flag.parser.enum_values)}."
        lines.append(f"| `--{name}` | {f'`{default}`' if default else ''} | {help_text} |")
    return "\n".join(lines) + "\n"
