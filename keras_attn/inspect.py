"""What the attention does: the weights of every SE gate, SK selection and split-attention softmax,
and the maps over positions of CBAM and Global Context.

- `attention_model(model)`: a Keras model from the network's input to
  `{layer name: attention weights}`, read from the network itself.
- `excitation_profile(model, images, labels)`: mean channel weights per (block, class,
  channel), the SENet paper's excitation figure (Hu et al., 2018, Fig. 6); for SE, ECA, SK,
  split attention and CBAM's channel gate.
- `kernel_selection(model, images, scales)`: mean Selective Kernel branch weights as the
  object is enlarged, the SKNet paper's figures (Li et al., 2019, Figs. 3-4).
- `spatial_attention(model, images)`: the maps over positions of the kinds that make them
  (CBAM's spatial attention, Global Context's attention pooling), per image.
- `plot_excitation`, `plot_kernel_selection`, `plot_spatial_attention`: draw them with
  matplotlib (`pip install "keras-attn[plot]"`) and save PNGs.

Examples:
    ```python
    model = keras_attn.applications.get_model("seresnet20_cifar", classes=10,
                                              weights="runs/digits/best.weights.h5")
    profile = keras_attn.inspect.excitation_profile(model, images, labels)
    keras_attn.inspect.plot_excitation(profile, path="excitation.png")
    ```
"""

import dataclasses
import numbers
import os
import uuid

import keras
import numpy as np
from keras import ops

from keras_attn import attention
from keras_attn.layers import SelectiveKernel

__all__ = [
    "ExcitationProfile", "KernelSelection", "SpatialAttention", "attention_layers",
    "attention_model", "enlarge", "excitation_profile", "kernel_selection", "plot_excitation",
    "plot_kernel_selection", "plot_spatial_attention", "spatial_attention",
]

def attention_layers(model):
    """The attention layers of `model` (those of a kind in `keras_attn.attention`) in the order
    they run, as `[(name, layer)]`.

    Layers of a nested model (a backbone inside a fine-tuning model) are named
    `"<backbone name>/<layer name>"`.

    Args:
        model: a Keras model, or a model holding one (a fine-tuning model).

    Returns:
        A list of `(name, layer)`; empty when the model has no attention layer.

    Examples:
        >>> import keras_attn
        >>> model = keras_attn.applications.get_model("skresnet18", depths=(1, 1, 1, 1),
        ...                                           input_shape=(64, 64, 3), classes=10)
        >>> [name for name, _ in attention_layers(model)]
        ['stage1_block1_conv1', 'stage2_block1_conv1', 'stage3_block1_conv1', 'stage4_block1_conv1']
    """
    found = []
    for layer in model.layers:
        if attention.kind_of(layer) is not None:
            found.append((layer.name, layer))
        elif isinstance(layer, keras.Model):
            found += [(f"{layer.name}/{name}", inner) for name, inner in attention_layers(layer)]
    return found


def attention_model(model):
    """A model from `model`'s input to the weights of every attention layer inside it.

    The weights are computed by the layers themselves (`attention_weights`) on the inputs
    they receive inside `model`, so they are exactly what the network applies, and read as
    each kind's registry entry says (`AttentionKind.reads`), for example:
    - `SqueezeExcite`: the gate, `(batch, channels)`, in (0, 1);
    - `SelectiveKernel`: the branch weights, `(batch, branches, channels)`, summing to 1
      across branches;
    - `SplitAttention`: the split weights, `(batch, radix, channels)`, summing to 1 across
      the radix (sigmoid gates, radix 1, when `radix` is 1).

    Args:
        model: a functional Keras model (any network of `keras_attn.applications`, or your
            own with these layers, also inside a nested backbone).

    Returns:
        A `keras.Model` whose output is a dict `{layer name: weights}` in float32, keyed as
        `attention_layers` names them; a kind whose registry entry reads several arrays
        (CBAM: its channel gate and its spatial map) gives one output each,
        `"<layer name>/<part>"` (`"stage1_block1_cbam/spatial"`).

    Raises:
        ValueError: the model has no attention layer, or one is used more than once.

    Examples:
        ```python
        weights = attention_model(model).predict(images)
        weights["stage3_block1_conv2"].shape      # a SKNet's selective kernel
        # (8, 2, 256)
        ```
    """
    return _reader(model, _attention_outputs(model))


def _attention_outputs(model):
    """`{name: symbolic weights}` of every attention layer of `model`, as `attention_model`
    returns them."""
    if not attention_layers(model):
        layers = ", ".join(kind.layer.__name__ for kind in attention.kinds())
        raise ValueError(
            f"{model.name!r} has no attention layer (of the registered kinds: {layers}): "
            "there is no attention to read."
        )
    return _symbolic_weights(model)


def _reader(model, outputs):
    return keras.Model(model.inputs, outputs, name=f"{model.name}_attention")


def _map_names(model):
    """The names of `model`'s attention outputs that are maps over positions, as each kind's
    registry entry declares them (`AttentionKind.spatial_map`), in depth order."""
    names = []
    for name, layer in attention_layers(model):
        part = attention.kind_of(layer).spatial_map
        if part is True:
            names.append(name)
        elif part:
            names.append(f"{name}/{part}")
    return names


def _symbolic_weights(model):
    """`{name: symbolic weights}` of `model`'s attention layers, in `model`'s own graph."""
    outputs = {}
    for layer in model.layers:
        if attention.kind_of(layer) is not None:
            weights = _AttentionReader(layer)(_only_input(layer))
            if isinstance(weights, dict):  # a kind that reads several (CBAM's two gates)
                outputs.update({f"{layer.name}/{part}": value for part, value in weights.items()})
            else:
                outputs[layer.name] = weights
        elif isinstance(layer, keras.Model) and attention_layers(layer):
            inner = keras.Model(layer.inputs, _symbolic_weights(layer))
            for name, weights in inner(_only_input(layer)).items():
                outputs[f"{layer.name}/{name}"] = weights
    return outputs


class _AttentionReader(keras.layers.Layer):
    """One graph node that runs `layer.attention_weights` (the gate's sublayers, called on
    their own, would enter the graph under names that repeat from block to block)."""

    def __init__(self, layer):
        super().__init__(name=f"{layer.name}_attention", dtype="float32")
        self.layer = layer

    def call(self, inputs):
        read = attention.kind_of(self.layer).read
        return keras.tree.map_structure(lambda weights: ops.cast(weights, "float32"),
                                        read(self.layer.attention_weights(inputs)))


def _only_input(layer):
    nodes = layer._inbound_nodes  # noqa: SLF001 (Keras keeps a layer's calls nowhere public)
    if len(nodes) != 1:
        raise ValueError(
            f"Layer {layer.name!r} is called {len(nodes)} times in the model; attention can be "
            "read only from layers that run once."
        )
    inputs = nodes[0].input_tensors
    return inputs[0] if len(inputs) == 1 else inputs


@dataclasses.dataclass(frozen=True)
class ExcitationProfile:
    """Mean attention weights per class, as `excitation_profile` measures them.

    Attributes:
        classes: the class ids, sorted, one row of every array per class.
        class_names: a name per class id in `classes`.
        counts: number of images of each class.
        means: `{layer name: (classes, channels)}` for SE and ECA gates and CBAM's channel
            gate (`"<layer name>/channel"`), `(classes, branches, channels)` for SK and split
            attention, in depth order. Maps over positions (CBAM's spatial attention, Global
            Context's) are not profiled: `spatial_attention` reads them.

    Examples:
        ```python
        profile = keras_attn.inspect.excitation_profile(model, images, labels)
        profile.means["stage3_block3_se"][profile.classes.tolist().index(7)]  # class 7's gates
        ```
    """

    classes: np.ndarray
    class_names: tuple
    counts: np.ndarray
    means: dict


def excitation_profile(model, images, labels, class_names=None, batch_size=32, verbose=0):
    """Mean channel attention weights per (block, class, channel): the SENet paper's Fig. 6.

    Every output of `attention_model` that is weights per channel (and branch) is profiled;
    the outputs the attention registry declares maps over positions
    (`AttentionKind.spatial_map`: CBAM's `"<layer>/spatial"`, Global Context's map) are left
    out (`spatial_attention` reads them).

    Args:
        model: the network (see `attention_model`), with at least one attention layer that
            weighs channels.
        images: what `model` takes, `(n, height, width, 3)` (preprocessed as for `predict`).
        labels: `n` integer class ids (the true classes, or `model`'s predictions).
        class_names: names of the class ids, a sequence indexed by class id; default: the ids.
        batch_size: images per `keras.Model.predict` batch.
        verbose: as `keras.Model.predict` takes it ("auto" shows a progress bar).

    Returns:
        An `ExcitationProfile`.

    Raises:
        ValueError: `labels` are not one integer class id per image, `class_names` does not
            name every label, or `model` has no attention layer that weighs channels (a
            GC-ResNet: only maps over positions).

    Examples:
        ```python
        profile = excitation_profile(model, images, labels)
        profile.means["stage3_block3_se"].shape   # 10 classes, 64 channels
        # (10, 64)
        ```
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"`labels` must hold one class id per image: {images.shape[0]} images; received "
            f"labels of shape {labels.shape}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must be integer class ids; received dtype {labels.dtype}.")
    if class_names is not None and labels.size and not (
        labels.min() >= 0 and labels.max() < len(class_names)
    ):
        raise ValueError(
            f"`class_names` must name every class id in `labels` (0 to {labels.max()}); "
            f"received {len(class_names)} names."
        )
    maps = set(_map_names(model))
    outputs = {name: weights for name, weights in _attention_outputs(model).items()
               if name not in maps}
    if not outputs:
        raise ValueError(
            f"{model.name!r} has no channel attention to profile: its attention layers make "
            f"only maps over positions ({', '.join(sorted(maps))}); spatial_attention reads "
            "those."
        )
    weights = _reader(model, outputs).predict(images, batch_size=batch_size, verbose=verbose)
    classes, counts = np.unique(labels, return_counts=True)
    means = {name: np.stack([values[labels == label].mean(axis=0) for label in classes])
             for name, values in _in_depth_order(model, weights)}
    names = tuple(str(class_names[label] if class_names is not None else label)
                  for label in classes)
    return ExcitationProfile(classes=classes, class_names=names, counts=counts, means=means)


@dataclasses.dataclass(frozen=True)
class KernelSelection:
    """Mean Selective Kernel branch weights at each scale, as `kernel_selection` measures them.

    Attributes:
        scales: the enlargement factors, one row of every array per scale.
        kernel_sizes: `{layer name: receptive field of each branch}`, e.g. `(3, 5)`.
        means: `{layer name: (scales, branches, channels)}`, in depth order.

    Examples:
        ```python
        selection = keras_attn.inspect.kernel_selection(model, images, scales=(1.0, 2.0))
        selection.kernel_sizes["stage2_block1_conv2"]   # e.g. (3, 5)
        ```
    """

    scales: tuple
    kernel_sizes: dict
    means: dict

    def difference(self, name):
        """Mean weight of the largest kernel minus the smallest, `(scales, channels)`: the
        SKNet paper's "attention difference" (Fig. 3)."""
        return self.means[name][:, -1] - self.means[name][:, 0]


def kernel_selection(model, images, scales=(1.0, 1.5, 2.0), batch_size=32, verbose=0):
    """Selective Kernel branch weights as the object grows: the SKNet paper's Figs. 3-4.

    Each image is enlarged by cropping its central `1 / scale` and resizing it back to the
    full size (bilinear), as the paper enlarges objects; the SK layers' branch weights are
    averaged over the images for each scale. The paper finds that larger objects put more
    weight on the larger kernels in the early stages.

    Args:
        model: a network with `SelectiveKernel` layers (SKNet, SK-ResNet, your own).
        images: what `model` takes, `(n, height, width, 3)`.
        scales: enlargement factors, each >= 1.
        batch_size: images per `keras.Model.predict` batch.
        verbose: as `keras.Model.predict` takes it.

    Returns:
        A `KernelSelection`.

    Examples:
        ```python
        selection = kernel_selection(model, images, scales=(1.0, 1.5, 2.0))
        selection.difference("stage2_block1_conv2").mean(axis=-1)   # one value per scale
        ```
    """
    scales = tuple(float(scale) for scale in scales)
    if not scales or min(scales) < 1.0:
        raise ValueError(f"`scales` must be enlargement factors >= 1; received {scales!r}.")
    layers = {name: layer for name, layer in attention_layers(model)
              if isinstance(layer, SelectiveKernel)}
    if not layers:
        raise ValueError(
            f"{model.name!r} has no SelectiveKernel layer; kernel_selection reads SK branch "
            "weights (attention_model reads every kind of attention)."
        )
    reader = attention_model(model)
    per_scale = []
    for scale in scales:
        weights = reader.predict(enlarge(images, scale), batch_size=batch_size,
                                 verbose=verbose)
        per_scale.append({name: weights[name].mean(axis=0) for name in layers})
    means = {name: np.stack([weights[name] for weights in per_scale]) for name in layers}
    kernel_sizes = {name: tuple(layer.kernel_size) for name, layer in layers.items()}
    return KernelSelection(scales=scales, kernel_sizes=kernel_sizes, means=means)


def enlarge(images, scale):
    """Crops the central `1 / scale` of each image and resizes it back (bilinear):
    the object appears `scale` times larger.

    Args:
        images: `(n, height, width, channels)` pixels.
        scale: the enlargement factor, >= 1.

    Returns:
        A float32 NumPy array of the same shape.

    Examples:
        >>> import numpy as np
        >>> image = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> enlarge(image, 2.0)[0, :, :, 0]   # the central 2x2, resized to 4x4
        array([[ 5.  ,  5.25,  5.75,  6.  ],
               [ 6.  ,  6.25,  6.75,  7.  ],
               [ 8.  ,  8.25,  8.75,  9.  ],
               [ 9.  ,  9.25,  9.75, 10.  ]], dtype=float32)
    """
    images = np.asarray(images, "float32")
    if images.ndim != 4:
        raise ValueError(f"`images` must be (n, height, width, channels); received shape "
                         f"{images.shape}.")
    if scale == 1.0:
        return images
    height, width = images.shape[1:3]
    crop_height, crop_width = round(height / scale), round(width / scale)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    crop = images[:, top:top + crop_height, left:left + crop_width]
    return np.asarray(ops.image.resize(crop, (height, width), interpolation="bilinear",
                                       antialias=False))


@dataclasses.dataclass(frozen=True)
class SpatialAttention:
    """The maps over positions of a network's attention layers, per image, as
    `spatial_attention` reads them.

    Attributes:
        maps: `{name: (n, height, width)}` in float32, in depth order, one map per image at
            the layer's own resolution: `"<layer>/spatial"` for CBAM (the spatial attention,
            in (0, 1)), the layer's name for Global Context (the attention that pools the
            context, summing to 1 over each map).
        image_shape: the shape of the images they were computed on, `(n, height, width,
            channels)`.

    Examples:
        ```python
        attention = keras_attn.inspect.spatial_attention(model, images)
        attention.maps["stage1_block1_cbam/spatial"][0]   # the first image's map
        ```
    """

    maps: dict
    image_shape: tuple


def spatial_attention(model, images, batch_size=32, verbose=0):
    """The attention maps over positions of every attention layer that makes one, per image.

    Which outputs of `attention_model` are maps, the attention registry declares
    (`AttentionKind.spatial_map`):
    - CBAM (Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018,
      https://arxiv.org/abs/1807.06521): the spatial attention, a sigmoid in (0, 1) per
      position that rescales every channel; the paper shows where the network looks by
      overlays on the input image (Fig. 4, Grad-CAM);
    - Global Context (Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation Networks
      and Beyond", 2019, https://arxiv.org/abs/1904.11492): the softmax over positions that
      pools the context vector, summing to 1 over each map (the paper's Fig. 1 shows that
      a non-local block's attention maps are almost the same for every query position,
      which is why one map per image suffices).
    `plot_spatial_attention` draws them over the images.

    Args:
        model: the network (see `attention_model`).
        images: what `model` takes, `(n, height, width, channels)` (preprocessed as for
            `predict`).
        batch_size: images per `keras.Model.predict` batch.
        verbose: as `keras.Model.predict` takes it ("auto" shows a progress bar).

    Returns:
        A `SpatialAttention`.

    Raises:
        ValueError: `images` is not `(n, height, width, channels)`, or `model` has no attention
            layer of a kind that makes maps over positions (the message lists the registered
            kinds that do).

    Examples:
        >>> import numpy as np
        >>> import keras_attn
        >>> model = keras_attn.applications.get_model(
        ...     "cbamresnet18", depths=(1, 1, 1, 1), widths=(16, 32, 64, 128),
        ...     input_shape=(64, 64, 3), classes=10)
        >>> images = np.random.default_rng(0).normal(size=(2, 64, 64, 3))
        >>> attention = spatial_attention(model, images)
        >>> {name: maps.shape for name, maps in attention.maps.items()}
        ... # doctest: +NORMALIZE_WHITESPACE
        {'stage1_block1_cbam/spatial': (2, 16, 16), 'stage2_block1_cbam/spatial': (2, 8, 8),
         'stage3_block1_cbam/spatial': (2, 4, 4), 'stage4_block1_cbam/spatial': (2, 2, 2)}
    """
    names = _map_names(model)
    if not names:
        makers = ", ".join(kind.layer.__name__ for kind in attention.kinds() if kind.spatial_map)
        raise ValueError(
            f"{model.name!r} has no attention layer that makes maps over positions (of the "
            f"registered kinds, {makers} do); excitation_profile and attention_model read its "
            "attention."
        )
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"`images` must be (n, height, width, channels); received shape "
                         f"{images.shape}.")
    outputs = _attention_outputs(model)
    missing = [name for name in names if name not in outputs]
    if missing:
        raise ValueError(
            f"The attention registry declares maps {missing} (AttentionKind.spatial_map) that "
            f"the kinds' `read` does not return; it returns {sorted(outputs)}."
        )
    reader = _reader(model, {name: outputs[name] for name in names})
    weights = reader.predict(images, batch_size=batch_size, verbose=verbose)
    return SpatialAttention(maps=dict(_in_depth_order(model, weights)),
                            image_shape=tuple(images.shape))


def _in_depth_order(model, weights):
    """`weights`' items in the order `model`'s attention layers run; a layer's parts
    (`"<layer name>/<part>"`) in the order its kind reads them."""
    ordered = []
    for name, _ in attention_layers(model):
        ordered += [(key, np.asarray(weights[key])) for key in weights
                    if key == name or key.startswith(f"{name}/")]
    return ordered


def plot_excitation(profile, layers=None, branch=0, max_panels=6, path=None):
    """Mean excitation against channel index, one line per class, one panel per block.

    Args:
        profile: an `ExcitationProfile`.
        layers: the layer names to draw; default: up to `max_panels` spread over the depth
            (the SENet figure shows blocks from the middle to the last stage).
        branch: for SK and split attention, which branch's (split's) weight to draw.
        max_panels: most panels drawn when `layers` is not given.
        path: where to save the figure as a PNG (written whole or not at all).

    Returns:
        The matplotlib `Figure`.

    Examples:
        ```python
        profile = keras_attn.inspect.excitation_profile(model, images, labels)
        keras_attn.inspect.plot_excitation(profile, path="excitation.png")
        ```
    """
    pyplot = _pyplot()
    names = _pick(list(profile.means), layers, max_panels)
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows),
                                   squeeze=False, layout="constrained")
    for axis, name in zip(axes.flat, names):
        means = profile.means[name]
        if means.ndim == 3:
            if not 0 <= branch < means.shape[1]:
                raise ValueError(f"`branch` must be in [0, {means.shape[1]}) for {name!r}; "
                                 f"received branch={branch}.")
            means = means[:, branch]
        for label, values in zip(profile.class_names, means):
            axis.plot(np.arange(values.shape[-1]), values, linewidth=0.8, label=label)
        axis.set_title(name if profile.means[name].ndim == 2 else f"{name} (branch {branch})",
                       fontsize=9)
        axis.set_xlabel("channel index", fontsize=8)
        axis.set_ylabel("mean activation", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(names):]:
        axis.remove()
    axes.flat[0].legend(fontsize=6, ncol=2, title="class", title_fontsize=7)
    return _finish(figure, path)


def plot_kernel_selection(selection, layers=None, path=None):
    """The SKNet paper's two views of kernel selection as objects grow.

    Left: per block, the mean attention difference (largest kernel minus smallest, averaged
    over channels) at each scale (Fig. 4). Right: the difference per channel at each scale
    for one block (Fig. 3): the block in `layers[0]`, default the one whose mean
    difference changes most with scale.

    Args:
        selection: a `KernelSelection`.
        layers: the layer names of the left panel (default: all); the first is drawn per
            channel.
        path: where to save the figure as a PNG.

    Returns:
        The matplotlib `Figure`.

    Examples:
        ```python
        selection = keras_attn.inspect.kernel_selection(model, images)
        keras_attn.inspect.plot_kernel_selection(selection, path="kernel_selection.png")
        ```
    """
    pyplot = _pyplot()
    names = _pick(list(selection.means), layers, None, "the selection has")
    mean_difference = np.stack([selection.difference(name).mean(axis=-1) for name in names])
    if layers:
        detail = names[0]
    else:
        detail = names[int(np.argmax(np.ptp(mean_difference, axis=1)))]
    figure, (bars, channels) = pyplot.subplots(
        1, 2, figsize=(11, 3.4), layout="constrained", width_ratios=(1.4, 1))
    width = 0.8 / len(selection.scales)
    positions = np.arange(len(names))
    for index, scale in enumerate(selection.scales):
        bars.bar(positions + index * width, mean_difference[:, index], width,
                 label=f"{scale:g}x")
    bars.set_xticks(positions + width * (len(selection.scales) - 1) / 2)
    bars.set_xticklabels([name.rsplit("_", 1)[0] for name in names], rotation=60,
                         fontsize=7, ha="right")
    bars.axhline(0, color="black", linewidth=0.5)
    small, large = (selection.kernel_sizes[names[0]][i] for i in (0, -1))
    bars.set_ylabel(f"mean attention {large}x{large} - {small}x{small}", fontsize=8)
    bars.legend(title="object scale", fontsize=7, title_fontsize=7)
    for index, scale in enumerate(selection.scales):
        channels.plot(selection.difference(detail)[index], linewidth=0.8, label=f"{scale:g}x")
    channels.axhline(0, color="black", linewidth=0.5)
    channels.set_title(detail, fontsize=9)
    channels.set_xlabel("channel index", fontsize=8)
    channels.set_ylabel("attention difference", fontsize=8)
    channels.legend(title="object scale", fontsize=7, title_fontsize=7)
    return _finish(figure, path)


def plot_spatial_attention(attention, images, layers=None, max_images=4, max_panels=4,
                           path=None):
    """Attention maps over the images they were computed on: one row per image, its attention
    maps side by side.

    The first column shows the image, scaled to [0, 1] for display (whatever its
    preprocessing); each further column one layer's map, resized to the image (bilinear) and
    laid over it in colour, as the CBAM paper shows where a network looks (Woo et al., ECCV
    2018, https://arxiv.org/abs/1807.06521, Fig. 4) and GCNet its attention maps (Cao et al.,
    2019, https://arxiv.org/abs/1904.11492, Fig. 1). Each map is scaled to its own minimum and
    maximum (written under it), so that the pattern shows at every depth: a CBAM map in (0, 1)
    and a Global Context map summing to 1 over hundreds of positions alike. The column's
    title names the layer and the map's size.

    Args:
        attention: a `SpatialAttention`.
        images: the images the maps were computed on, in the same order, as they should be
            shown: `(n, height, width, channels)` with 1 or 3 channels, or `(n, height,
            width)`; raw pixels or preprocessed (each image is scaled to [0, 1]). A larger or
            smaller copy of each image than the network saw is fine (the maps are resized to
            it).
        layers: the map names (keys of `attention.maps`) to draw; default: up to
            `max_panels` spread over the depth.
        max_images: most images (rows) drawn, the first ones.
        max_panels: most maps (columns after the image) when `layers` is not given.
        path: where to save the figure as a PNG (written whole or not at all).

    Returns:
        The matplotlib `Figure`.

    Raises:
        ValueError: `images` are not as many as the maps were computed on, or not images;
            `layers` names a map that `attention` does not have; `max_images` or
            `max_panels` is not a positive integer.

    Examples:
        ```python
        attention = keras_attn.inspect.spatial_attention(model, preprocessed)
        keras_attn.inspect.plot_spatial_attention(attention, pixels, path="cbam_spatial.png")
        ```
    """
    for argument, value in (("max_images", max_images), ("max_panels", max_panels)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"`{argument}` must be a positive integer; received "
                             f"{argument}={value!r}.")
    images = np.asarray(images, "float32")
    count = attention.image_shape[0]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if (images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3)
            or images.shape[0] != count):
        raise ValueError(
            f"`images` must be the {count} images the maps were computed on, (n, height, "
            f"width) or (n, height, width, 1 or 3 channels); received shape {images.shape}."
        )
    names = _pick(list(attention.maps), layers, max_panels, "`attention` has maps")
    shown = images[:max_images]
    height, width = shown.shape[1:3]
    pyplot = _pyplot()
    columns = 1 + len(names)
    figure, axes = pyplot.subplots(len(shown), columns, squeeze=False, layout="constrained",
                                   figsize=(1.8 * columns, 1.9 * len(shown) + 0.4))
    for row, image in enumerate(shown):
        axes[row, 0].imshow(_unit_range(image), cmap="gray" if image.ndim == 2 else None)
    axes[0, 0].set_title("image", fontsize=8)
    for column, name in enumerate(names, start=1):
        maps = attention.maps[name][:len(shown)]
        resized = np.asarray(ops.image.resize(maps[..., None], (height, width),
                                              interpolation="bilinear", antialias=False))
        for row, (image, values, original) in enumerate(zip(shown, resized[..., 0], maps)):
            axis = axes[row, column]
            low, high = float(original.min()), float(original.max())
            axis.imshow(_unit_range(image), cmap="gray" if image.ndim == 2 else None)
            axis.imshow(_unit_range(values, low, high), cmap="jet", alpha=0.5, vmin=0.0,
                        vmax=1.0)
            axis.set_xlabel(f"{low:.3g} to {high:.3g}", fontsize=6, labelpad=1)
        axes[0, column].set_title(f"{name}\n{maps.shape[1]}x{maps.shape[2]} map", fontsize=7)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    return _finish(figure, path)


def _unit_range(values, low=None, high=None):
    """`values` with `low` (default: their minimum) at 0 and `high` (their maximum) at 1, for
    display; zeros when `low == high`."""
    low = float(values.min()) if low is None else low
    high = float(values.max()) if high is None else high
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _pick(available, requested, most, source="the profile has"):
    if requested:
        unknown = [name for name in requested if name not in available]
        if unknown:
            raise ValueError(f"Unknown layers {unknown} in `layers`; {source} {available}.")
        return list(requested)
    if most is None or len(available) <= most:
        return available
    return [available[int(i)] for i in np.linspace(0, len(available) - 1, most).round()]


def _pyplot():
    try:
        from matplotlib import pyplot
    except ImportError:
        raise ImportError(
            'Plotting needs matplotlib: pip install "keras-attn[plot]".'
        ) from None
    return pyplot


def _finish(figure, path):
    if path is not None:
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        # Saved beside and renamed: an interrupted save never leaves half a PNG at `path`.
        # (Not mkstemp, whose 0600 file would keep that mode: the PNG gets the umask's.)
        part = os.path.join(directory, f".{os.path.basename(path)}.part-{uuid.uuid4().hex}.png")
        try:
            figure.savefig(part, dpi=120)
            os.replace(part, path)
        finally:
            if os.path.exists(part):
                os.remove(part)
    return figure
