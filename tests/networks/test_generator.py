import pytest
import torch

from gemix_monai.networks import Generator
from gemix_monai.networks.synthesis import SynthesisNetwork


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resolution", [16, 32, 64, 128, 256])
def test_output_shape_for_every_resolution_and_channel_count(resolution, channels, make_generator):
    G = make_generator(resolution=resolution, channels=channels)
    with torch.no_grad():
        img = G(torch.randn(2, G.z_dim), torch.tensor([[1.0, 0, 0], [0.2, 0.3, 0.5]]))
    assert img.shape == (2, channels, resolution, resolution)
    assert img.dtype == torch.float32
    assert torch.isfinite(img).all()
    assert G.num_ws == G.synthesis.num_ws == 2 * (resolution.bit_length() - 3) + 2


@pytest.mark.parametrize("resolution", [8, 48, 2048, 100])
def test_unsupported_resolution_is_refused(resolution, make_generator):
    with pytest.raises(ValueError, match="img_resolution must be a power of two in 16..1024"):
        make_generator(resolution=resolution)


def test_attributes_and_init_kwargs_rebuild_the_same_architecture(make_generator):
    G = make_generator(resolution=32, channels=2)
    assert (G.z_dim, G.c_dim, G.img_resolution, G.img_channels) == (8, 3, 32, 2)
    assert G.class_names == ["class_0", "class_1", "class_2"]
    clone = Generator(**G.init_kwargs)
    assert clone.state_dict().keys() == G.state_dict().keys()
    assert all(clone.state_dict()[k].shape == v.shape for k, v in G.state_dict().items())


def test_class_names_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="class_names must be a list of c_dim=3 strings"):
        Generator(8, 3, 16, 16, 1, class_names=["normal", "pneumonia"])


def test_const_noise_is_deterministic_and_random_noise_is_not(make_generator, with_noise_strength):
    G = with_noise_strength(make_generator())
    z, c = torch.randn(2, 8), torch.eye(3)[:2]
    with torch.no_grad():
        const_a, const_b = G(z, c, noise_mode="const"), G(z, c, noise_mode="const")
        random_a, random_b = G(z, c, noise_mode="random"), G(z, c, noise_mode="random")
        none_a, none_b = G(z, c, noise_mode="none"), G(z, c, noise_mode="none")
    assert torch.equal(const_a, const_b) and torch.equal(none_a, none_b)
    assert not torch.equal(random_a, random_b)
    assert not torch.equal(const_a, none_a)


def test_const_noise_buffers_are_part_of_the_state(make_generator):
    G = make_generator()
    names = [k for k in G.state_dict() if k.endswith("noise_const")]
    assert len(names) == G.num_ws - 1  # one per modulated 3x3 conv
    assert G.synthesis.blocks[-1].conv1.noise_const.shape == (16, 16)


def test_unknown_noise_mode_is_refused(make_generator):
    G = make_generator()
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        G(torch.randn(1, 8), torch.eye(3)[:1], noise_mode="fixed")


def test_mixed_precision_blocks_compute_in_float32_on_cpu():
    synthesis = SynthesisNetwork(
        w_dim=16,
        img_resolution=32,
        img_channels=1,
        channel_base=256,
        channel_max=16,
        num_fp16_res=2,
        mixed_precision_dtype="bfloat16",
    )
    assert [b.use_fp16 for b in synthesis.blocks] == [False, False, True, True]
    assert all(b.compute_dtype(torch.device("cpu")) == torch.float32 for b in synthesis.blocks)
    assert synthesis.blocks[-1].compute_dtype(torch.device("cuda")) == torch.bfloat16
    img = synthesis(torch.randn(2, synthesis.num_ws, 16))
    assert img.dtype == torch.float32


def test_label_changes_the_image(make_generator):
    G = make_generator()
    z = torch.randn(1, 8).repeat(2, 1)
    with torch.no_grad():
        img = G(z, torch.eye(3)[[0, 2]], noise_mode="const")
    assert not torch.allclose(img[0], img[1])


def test_path_length_double_backward_through_the_generator(make_generator):
    G = make_generator()
    z, c = torch.randn(4, 8), torch.eye(3)[[0, 1, 2, 0]]
    ws = G.mapping(z, c)
    img = G.synthesis(ws, noise_mode="random")
    y = torch.randn_like(img) / img.shape[2]
    (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    (lengths - lengths.detach().mean()).square().mean().backward()
    grads = [p.grad for p in G.synthesis.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_reduced_precision_blocks_cast_consistently(make_generator, make_discriminator, monkeypatch):
    """The CUDA mixed-precision data path, exercised on CPU by forcing bfloat16 compute in the top blocks."""
    monkeypatch.setenv("GEMIX_OPS", "ref")
    G = make_generator(resolution=32, num_fp16_res=2, mixed_precision_dtype="bfloat16", conv_clamp=256)
    D = make_discriminator(resolution=32, num_fp16_res=2, mixed_precision_dtype="bfloat16", conv_clamp=256)
    for block in [*G.synthesis.blocks, *D.blocks]:
        if block.use_fp16:
            monkeypatch.setattr(block, "compute_dtype", lambda device: torch.bfloat16)
    c = torch.eye(3)[[0, 1, 2, 0]]
    img = G(torch.randn(4, G.z_dim), c)
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    real = img.detach().requires_grad_(True)
    logits = D(real, c)
    assert logits.dtype == torch.float32
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    grad.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)
