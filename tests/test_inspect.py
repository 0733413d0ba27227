"""keras_attn.inspect: the attention weights read out of a network, their profiles and plots."""

import dataclasses
import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_attn import attention, inspect, testing
from keras_attn.applications import get_model
from keras_attn.layers import SelectiveKernel, SplitAttention, SqueezeExcite

SMALL = {"widths": (16, 32, 64, 128), "depths": (1, 2, 1, 1), "input_shape": (48, 48, 3),
         "classes": 5}
NAMES = {"se": "seresnext50_32x4d", "sk": "skresnet18", "splat": "resnest50d"}


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    return {kind: get_model(name, **SMALL) for kind, name in NAMES.items()}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(6, 48, 48, 3)).astype("float32")


@pytest.fixture(scope="module")
def read(models, images):
    """`{kind: (attention model, its outputs on images)}`."""
    result = {}
    for kind, model in models.items():
        reader = inspect.attention_model(model)
        result[kind] = reader, reader.predict(images, verbose=0)
    return result


def _inside(model, layer, images):
    """What `layer` receives and returns inside `model`."""
    probe = keras.Model(model.input, [layer.input, layer.output])
    return [np.asarray(x) for x in probe(images)]


@pytest.mark.parametrize("kind, layer_type, branches", [
    ("se", SqueezeExcite, None), ("sk", SelectiveKernel, 2), ("splat", SplitAttention, 2)])
def test_attention_model_reads_every_layer_with_its_shape(models, read, images, kind,
                                                          layer_type, branches):
    model = models[kind]
    layers = [layer for layer in model.layers if isinstance(layer, layer_type)]
    _, outputs = read[kind]
    assert list(outputs) == [layer.name for layer in layers]  # in depth order, keyed by name
    assert len(layers) == sum(SMALL["depths"])
    for layer in layers:
        channels = layer.output.shape[-1]
        expected = (6, channels) if branches is None else (6, branches, channels)
        assert outputs[layer.name].shape == expected
        assert outputs[layer.name].dtype == np.float32


def test_squeeze_excite_gates_are_in_0_1_and_are_what_the_block_multiplies(models, read,
                                                                            images):
    model = models["se"]
    _, outputs = read["se"]
    for name, gates in outputs.items():
        assert np.all((gates > 0) & (gates < 1)), name
        inputs, gated = _inside(model, model.get_layer(name), images)
        np.testing.assert_allclose(gated, inputs * gates[:, None, None, :], rtol=1e-6,
                                   atol=1e-6)


@pytest.mark.parametrize("kind", ["sk", "splat"])
def test_branch_weights_sum_to_one_and_equal_the_layers_own(models, read, images, kind):
    model = models[kind]
    _, outputs = read[kind]
    for name, weights in outputs.items():
        assert np.all((weights > 0) & (weights < 1)), name
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
        layer = model.get_layer(name)
        inputs, _ = _inside(model, layer, images)
        own = np.asarray(layer.attention_weights(inputs))  # (batch, 1, 1, branches, channels)
        np.testing.assert_allclose(weights, own[:, 0, 0], atol=1e-6)


def test_attention_model_of_a_nested_backbone():
    backbone = get_model("seresnet18", include_top=False, widths=(8, 8, 16, 16),
                         depths=(1, 1, 1, 1), input_shape=(32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(backbone(inputs)))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")

    weights = inspect.attention_model(model).predict(images, verbose=0)

    assert list(weights) == [f"{backbone.name}/stage{i}_block1_se" for i in range(1, 5)]
    direct = inspect.attention_model(backbone).predict(images, verbose=0)
    for name, values in direct.items():
        np.testing.assert_allclose(weights[f"{backbone.name}/{name}"], values, atol=1e-6)


def test_attention_model_refuses_a_model_without_attention():
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs), name="plain")
    with pytest.raises(ValueError, match=r"'plain' has no attention layer \(of the registered "
                                         r"kinds: SqueezeExcite, SelectiveKernel, SplitAttention"):
        inspect.attention_model(plain)


def test_attention_model_refuses_a_layer_called_twice():
    inputs = keras.Input((8, 8, 16))
    gate = SqueezeExcite(rd_channels=4, name="shared_se")
    model = keras.Model(inputs, gate(gate(inputs)))
    with pytest.raises(ValueError, match="'shared_se' is called 2 times"):
        inspect.attention_model(model)


def test_excitation_profile_is_the_mean_per_class(models, read, images):
    labels = np.array([2, 0, 2, 4, 0, 2])
    profile = inspect.excitation_profile(models["splat"], images, labels,
                                         class_names=["a", "b", "c", "d", "e"])
    _, outputs = read["splat"]
    np.testing.assert_array_equal(profile.classes, [0, 2, 4])
    np.testing.assert_array_equal(profile.counts, [2, 3, 1])
    assert profile.class_names == ("a", "c", "e")
    assert list(profile.means) == list(outputs)
    for name, values in outputs.items():
        assert profile.means[name].shape == (3,) + values.shape[1:]
        np.testing.assert_allclose(profile.means[name][1], values[[0, 2, 5]].mean(axis=0),
                                   atol=1e-6)
        np.testing.assert_allclose(profile.means[name][2], values[3], atol=1e-6)


def test_excitation_profile_rejects_labels_that_do_not_fit(models, images):
    with pytest.raises(ValueError, match="one class id per image: 6 images; received labels "
                                         r"of shape \(5,\)"):
        inspect.excitation_profile(models["se"], images, np.zeros(5, int))
    with pytest.raises(ValueError, match="integer class ids; received dtype float64"):
        inspect.excitation_profile(models["se"], images, np.zeros(6))
    with pytest.raises(ValueError, match=r"`class_names` must name every class id in "
                                         r"`labels` \(0 to 5\); received 2 names"):
        inspect.excitation_profile(models["se"], images, np.arange(6), class_names=["a", "b"])


def test_enlarge_crops_the_center_and_resizes_it_back():
    image = np.zeros((1, 8, 8, 1), "float32")
    image[0, 3:5, 3:5] = 1.0  # a 2x2 object in the middle
    enlarged = inspect.enlarge(image, 2.0)[0, :, :, 0]
    # The central 4x4 resized to 8x8, bilinear with half-pixel centers: the object is 4 wide.
    profile = np.array([0, 0.25, 0.75, 1, 1, 0.75, 0.25, 0])
    np.testing.assert_allclose(enlarged, np.outer(profile, profile), atol=1e-6)
    np.testing.assert_array_equal(inspect.enlarge(image, 1.0), image)


def test_kernel_selection_averages_the_branch_weights_per_scale(models, read, images):
    selection = inspect.kernel_selection(models["sk"], images, scales=(1, 2))
    _, outputs = read["sk"]
    assert selection.scales == (1.0, 2.0)
    assert list(selection.means) == list(outputs)
    reader = inspect.attention_model(models["sk"])
    doubled = reader.predict(inspect.enlarge(images, 2.0), verbose=0)
    for name, values in outputs.items():
        assert selection.kernel_sizes[name] == (3, 5)
        np.testing.assert_allclose(selection.means[name][0], values.mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(selection.means[name][1], doubled[name].mean(axis=0),
                                   atol=1e-6)
        np.testing.assert_allclose(selection.difference(name),
                                   selection.means[name][:, 1] - selection.means[name][:, 0])


def test_kernel_selection_rejects_bad_input(models, images):
    with pytest.raises(ValueError, match="has no SelectiveKernel layer"):
        inspect.kernel_selection(models["se"], images)
    with pytest.raises(ValueError, match=r"`scales` must be enlargement factors >= 1; "
                                         r"received \(0.5, 1.0\)"):
        inspect.kernel_selection(models["sk"], images, scales=(0.5, 1.0))


def _png_written(path):
    with open(path, "rb") as file:
        return file.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plots_are_saved_as_png(models, images, tmp_path):
    labels = np.array([0, 1, 2, 0, 1, 2])
    profile = inspect.excitation_profile(models["se"], images, labels)
    figure = inspect.plot_excitation(profile, max_panels=4, path=tmp_path / "excitation.png")
    assert _png_written(tmp_path / "excitation.png")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "excitation.png").st_mode & 0o777 == 0o666 & ~umask
    assert [axis.get_title() for axis in figure.axes] == [
        "stage1_block1_se", "stage2_block1_se", "stage3_block1_se", "stage4_block1_se"]
    assert len(figure.axes[0].lines) == 3  # one line per class

    splat = inspect.excitation_profile(models["splat"], images, labels)
    figure = inspect.plot_excitation(splat, layers=["stage2_block1_conv2"], branch=1,
                                     path=tmp_path / "split.png")
    assert _png_written(tmp_path / "split.png")
    assert figure.axes[0].get_title() == "stage2_block1_conv2 (branch 1)"

    selection = inspect.kernel_selection(models["sk"], images)
    figure = inspect.plot_kernel_selection(selection, path=tmp_path / "selection.png")
    assert _png_written(tmp_path / "selection.png")
    bars, channels = figure.axes
    assert len(bars.patches) == 3 * len(selection.means)  # one bar per block and scale
    assert len(channels.lines) == 3 + 1  # one line per scale, and the zero line


def test_plot_errors_name_the_problem(models, images):
    profile = inspect.excitation_profile(models["sk"], images, np.zeros(6, int))
    with pytest.raises(ValueError, match=r"Unknown layers \['stage9'\]"):
        inspect.plot_excitation(profile, layers=["stage9"])
    with pytest.raises(ValueError, match=r"`branch` must be in \[0, 2\) for "
                                         "'stage1_block1_conv1'; received branch=2"):
        inspect.plot_excitation(profile, branch=2)


def test_an_interrupted_save_leaves_no_file(models, images, tmp_path, monkeypatch):
    profile = inspect.excitation_profile(models["se"], images, np.zeros(6, int))
    figure_class = type(inspect.plot_excitation(profile))

    def fail_midway(self, path, **kwargs):
        with open(path, "wb") as file:
            file.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(figure_class, "savefig", fail_midway)
    with pytest.raises(KeyboardInterrupt):
        inspect.plot_excitation(profile, path=tmp_path / "excitation.png")
    assert os.listdir(tmp_path) == []


# Maps over positions (CBAM, Global Context) and the gates of ECA -------------------------------

TINY = {"widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "input_shape": (64, 64, 3),
        "classes": 10}
MAP_NETWORKS = {"cbam": "cbamresnet18", "gc": "gcresnet50", "eca": "ecaresnetlight"}
# What `spatial_attention` reads, per kind: the map's key for a layer.
MAP_KEYS = {"cbam": "{}/spatial", "gc": "{}"}


@pytest.fixture(scope="module")
def map_models():
    keras.utils.set_random_seed(1)
    models = {kind: get_model(name, **TINY) for kind, name in MAP_NETWORKS.items()}
    testing.perturb_batch_norm_statistics(models["cbam"])  # CBAM's spatial BatchNorm included
    return models


@pytest.fixture(scope="module")
def map_images():
    return np.random.default_rng(2).normal(size=(5, 64, 64, 3)).astype("float32")


@pytest.fixture(scope="module")
def spatial(map_models, map_images):
    return {kind: inspect.spatial_attention(map_models[kind], map_images) for kind in MAP_KEYS}


def _gates(model, kind):
    return [layer for layer in model.layers if type(layer) is attention.get(kind).layer]


@pytest.mark.parametrize("kind", ["cbam", "gc"])
def test_spatial_attention_is_each_layers_own_map_at_its_resolution(map_models, map_images,
                                                                    spatial, kind):
    model, read = map_models[kind], spatial[kind]
    gates = _gates(model, kind)
    assert list(read.maps) == [MAP_KEYS[kind].format(gate.name) for gate in gates]  # depth order
    assert read.image_shape == (5, 64, 64, 3)
    for gate in gates:
        maps = read.maps[MAP_KEYS[kind].format(gate.name)]
        assert maps.shape == (5, *gate.input.shape[1:3]) and maps.dtype == np.float32
        # Independently: the layer's own attention_weights on what it receives in the network.
        received = keras.Model(model.input, gate.input)(map_images)
        own = gate.attention_weights(received)
        own = ops.convert_to_numpy(own["spatial"] if kind == "cbam" else own)[..., 0]
        np.testing.assert_allclose(maps, own, rtol=0, atol=1e-6, err_msg=gate.name)
        if kind == "cbam":
            assert np.all((maps > 0) & (maps < 1)), gate.name
        else:
            assert np.all(maps > 0), gate.name
            np.testing.assert_allclose(maps.sum(axis=(1, 2), dtype="float64"), 1.0, rtol=0,
                                       atol=1e-6, err_msg=gate.name)
        assert maps.std(axis=(1, 2)).min() > 0  # a map, not a constant


def test_excitation_profile_of_cbam_keeps_only_its_channel_gates(map_models, map_images):
    model = map_models["cbam"]
    labels = np.array([3, 1, 3, 3, 1])
    profile = inspect.excitation_profile(model, map_images, labels)
    read = inspect.attention_model(model).predict(map_images, verbose=0)
    gates = _gates(model, "cbam")
    assert list(profile.means) == [f"{gate.name}/channel" for gate in gates]
    for gate in gates:
        means = profile.means[f"{gate.name}/channel"]
        assert means.shape == (2, gate.input.shape[-1])
        np.testing.assert_allclose(means[1], read[f"{gate.name}/channel"][[0, 2, 3]].mean(axis=0),
                                   rtol=0, atol=1e-6)


def test_excitation_profile_of_eca_is_the_gates_mean_per_class(map_models, map_images):
    model = map_models["eca"]
    labels = np.array([0, 9, 4, 9, 0])
    profile = inspect.excitation_profile(model, map_images, labels)
    read = inspect.attention_model(model).predict(map_images, verbose=0)
    gates = _gates(model, "eca")
    assert list(profile.means) == [gate.name for gate in gates] and len(gates) == 4
    np.testing.assert_array_equal(profile.classes, [0, 4, 9])
    for gate in gates:
        means = profile.means[gate.name]
        assert means.shape == (3, gate.input.shape[-1])
        assert np.all((means > 0) & (means < 1))
        np.testing.assert_allclose(means[2], read[gate.name][[1, 3]].mean(axis=0), rtol=0,
                                   atol=1e-6)


def test_profiles_and_maps_refuse_networks_without_them(map_models, map_images):
    with pytest.raises(ValueError, match=r"'gcresnet50' has no channel attention to profile: "
                                         r"its attention layers make only maps over positions "
                                         r"\(stage1_block1_gc, "):
        inspect.excitation_profile(map_models["gc"], map_images, np.zeros(5, int))
    with pytest.raises(ValueError, match=r"'ecaresnetlight' has no attention layer that makes "
                                         r"maps over positions \(of the registered kinds, "
                                         r"CBAM, GlobalContext do\)"):
        inspect.spatial_attention(map_models["eca"], map_images)
    with pytest.raises(ValueError, match=r"`images` must be \(n, height, width, channels\); "
                                         r"received shape \(64, 64, 3\)"):
        inspect.spatial_attention(map_models["cbam"], map_images[0])


class PositionGate(keras.layers.Layer):
    """An application's own kind that makes a map: a softmax over positions of the channel
    mean, which rescales the features."""

    def attention_weights(self, inputs):
        logits = ops.mean(inputs, axis=-1, keepdims=True)
        return ops.reshape(ops.softmax(ops.reshape(logits, (-1, logits.shape[1] * logits.shape[2])),
                                       axis=-1), ops.shape(logits))

    def call(self, inputs):
        return inputs * (1.0 + self.attention_weights(inputs))


@pytest.fixture
def position_gate():
    kind = attention.register(attention.AttentionKind(
        name="posgate", slot="gate", layer=PositionGate, arguments=(),
        paper=attention.Paper("Tests, 2026", "A map", "https://example.org"),
        description="a softmax over positions", read=attention.drop_channel_axis,
        spatial_map=True))
    yield kind
    attention.unregister("posgate")


def test_an_applications_own_map_kind_is_read_as_its_registry_entry_says(position_gate):
    model = get_model("seresnet18", gate="posgate", gate_args={}, widths=(8, 8, 8, 8),
                      depths=(1, 1, 1, 1), input_shape=(64, 64, 3), classes=3)
    images = testing.random_images((2, 64, 64, 3))
    read = inspect.spatial_attention(model, images)
    assert {name: maps.shape for name, maps in read.maps.items()} == {
        "stage1_block1_posgate": (2, 16, 16), "stage2_block1_posgate": (2, 8, 8),
        "stage3_block1_posgate": (2, 4, 4), "stage4_block1_posgate": (2, 2, 2)}
    with pytest.raises(ValueError, match="has no channel attention to profile"):
        inspect.excitation_profile(model, images, np.zeros(2, int))
    # A part that the kind's read does not return is a registration error, named as such.
    attention.register(dataclasses.replace(position_gate, spatial_map="map"), replace=True)
    with pytest.raises(ValueError, match=r"declares maps \['stage1_block1_posgate/map', .*\] "
                                         r"\(AttentionKind.spatial_map\) that the kinds' "
                                         r"`read` does not return; it returns "
                                         r"\['stage1_block1_posgate', "):
        inspect.spatial_attention(model, images)
    inputs = keras.Input((8, 8, 4))
    plain = keras.Model(inputs, SqueezeExcite(rd_channels=2)(inputs), name="se_only")
    with pytest.raises(ValueError, match=r"\(of the registered kinds, CBAM, GlobalContext, "
                                         r"PositionGate do\)"):
        inspect.spatial_attention(plain, np.zeros((1, 8, 8, 4), "float32"))


def _bilinear(maps, size):
    """`(n, h, w)` resized to `(n, size, size)`, bilinear with half-pixel centers and clamped
    edges, written out in NumPy."""
    def weights(length):
        centers = np.clip((np.arange(size) + 0.5) * length / size - 0.5, 0, length - 1)
        low = np.floor(centers).astype(int)
        high = np.minimum(low + 1, length - 1)
        matrix = np.zeros((size, length))
        matrix[np.arange(size), low] += 1 - (centers - low)
        matrix[np.arange(size), high] += centers - low
        return matrix

    rows, columns = weights(maps.shape[1]), weights(maps.shape[2])
    return np.einsum("ih,nhw,jw->nij", rows, maps.astype("float64"), columns)


def test_plot_spatial_attention_lays_each_map_over_its_image(spatial, map_images, tmp_path):
    read = spatial["cbam"]
    pixels = map_images * 40 + 128  # what a user shows: other values, the same images
    figure = inspect.plot_spatial_attention(read, pixels, max_images=3,
                                            path=tmp_path / "cbam.png")
    assert _png_written(tmp_path / "cbam.png")
    assert os.listdir(tmp_path) == ["cbam.png"]  # no part file left beside it
    names = list(read.maps)
    assert len(figure.axes) == 3 * (1 + len(names))  # three images, each with four maps
    axes = np.array(figure.axes).reshape(3, 1 + len(names))
    assert [axis.get_title() for axis in axes[0]] == ["image"] + [
        f"{name}\n{size}x{size} map" for name, size in zip(names, (16, 8, 4, 2))]
    for row in range(3):
        shown = pixels[row]
        np.testing.assert_allclose(axes[row, 0].images[0].get_array(),
                                   (shown - shown.min()) / (shown.max() - shown.min()),
                                   rtol=0, atol=1e-6)
        for column, name in enumerate(names, start=1):
            values = read.maps[name][row]
            expected = _bilinear(values[None], 64)[0]
            expected = (expected - values.min()) / (values.max() - values.min())
            image, overlay = axes[row, column].images
            np.testing.assert_allclose(overlay.get_array(), expected, rtol=0, atol=1e-5)
            assert overlay.get_alpha() == 0.5 and overlay.get_cmap().name == "jet"
            assert axes[row, column].get_xlabel() == (
                f"{values.min():.3g} to {values.max():.3g}")

    figure = inspect.plot_spatial_attention(spatial["gc"], map_images[..., 0],
                                            layers=["stage2_block1_gc"])
    assert [axis.get_title() for axis in figure.axes[:2]] == ["image",
                                                             "stage2_block1_gc\n8x8 map"]
    assert len(figure.axes) == 4 * 2  # max_images=4 rows


def test_plot_spatial_attention_errors_name_the_argument(spatial, map_images, tmp_path):
    path = tmp_path / "maps.png"
    cases = [
        ({"images": map_images[:4]}, r"`images` must be the 5 images the maps were computed "
                                     r"on, .*received shape \(4, 64, 64, 3\)"),
        ({"images": map_images[..., :2]}, r"received shape \(5, 64, 64, 2\)"),
        ({"layers": ["stage9_block1_gc"]}, r"Unknown layers \['stage9_block1_gc'\] in "
                                           r"`layers`; `attention` has maps \['stage1_block1_gc'"),
        ({"max_images": 0}, "`max_images` must be a positive integer; received max_images=0"),
        ({"max_panels": 1.5}, "`max_panels` must be a positive integer; received "
                              "max_panels=1.5"),
    ]
    for changes, message in cases:
        arguments = {"images": map_images, **changes}
        with pytest.raises(ValueError, match=message):
            inspect.plot_spatial_attention(spatial["gc"], path=path, **arguments)
    assert os.listdir(tmp_path) == []
