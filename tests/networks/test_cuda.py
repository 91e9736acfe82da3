"""Mixed precision exists on CUDA only; these run where a GPU is present."""

import pytest
import torch

from gemix_monai.networks import AugmentPipe

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")


@requires_cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_mixed_precision_generator_and_r1_are_finite(dtype, make_generator, make_discriminator):
    device = torch.device("cuda")
    G = make_generator(resolution=32, num_fp16_res=2, mixed_precision_dtype=dtype, conv_clamp=256).to(device)
    D = make_discriminator(resolution=32, num_fp16_res=2, mixed_precision_dtype=dtype, conv_clamp=256).to(device)
    assert G.synthesis.blocks[-1].compute_dtype(device) == getattr(torch, dtype)
    c = torch.eye(3, device=device)[[0, 1, 2, 0]]
    img = G(torch.randn(4, G.z_dim, device=device), c)
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    real = torch.randn(4, 1, 32, 32, device=device, requires_grad=True)
    logits = D(AugmentPipe.from_preset("bgc", p=1.0).to(device)(real), c)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    grad.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)


@requires_cuda
def test_generate_on_cuda_matches_cpu(make_generator):
    G = make_generator(resolution=16).eval()
    labels = torch.eye(3)
    cpu = G.generate(labels, seed=1)
    gpu = G.generate(labels, seed=1, device="cuda")
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)
