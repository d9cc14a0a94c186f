import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

torch.set_num_threads(int(os.environ.get("OCF_TEST_THREADS", "1")))


@pytest.fixture
def toy_plugins():
    """Plugins holding only the toy plugin (no entry points): fully isolated."""
    import toy_plugin

    from ocf.plugins import Plugins

    plugins = Plugins()
    plugins.add_module(toy_plugin, "toy")
    try:
        yield plugins
    finally:
        plugins.unregister("toy")


@pytest.fixture
def root():
    return ROOT
