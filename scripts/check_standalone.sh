#!/usr/bin/env bash
# Build every workspace package without workspace sources, then install each wheel alone, with all
# of its extras, into a fresh virtual environment (its optillm dependencies from the built wheels,
# the rest from PyPI) and import it in isolated mode.
set -euo pipefail
cd "$(dirname "$0")/.."

dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
uv build --all-packages --no-sources --quiet --out-dir "$dist"

# llama-cpp-python (the `local` extra of optillm-router and optillm-cli) only ships as source and
# takes minutes to compile: reuse a wheel uv already built on this machine, when there is one.
built=$(find "$(uv cache dir)" -path '*llama-cpp-python*' -name 'llama_cpp_python-*.whl' 2>/dev/null | head -n 1 || true)
if [ -n "$built" ]; then
    cp "$built" "$dist/"
fi

for pyproject in packages/*/pyproject.toml; do
    package=$(basename "$(dirname "$pyproject")")
    module=${package//-/_}
    wheel=$(ls "$dist"/"${module}"-*.whl)
    extras=$(python3 -I -c 'import sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
lines = wheel.read(metadata).decode().splitlines()
print(",".join(line.split(": ", 1)[1] for line in lines if line.startswith("Provides-Extra: ")))' "$wheel")
    requirement=$wheel
    if [ -n "$extras" ]; then
        requirement="$package[$extras] @ file://$wheel"
    fi
    venv="$dist/venv-$package"
    uv venv --quiet --python python3.11 "$venv"
    uv pip install --quiet --python "$venv/bin/python" --find-links "$dist" "$requirement" \
        --override <(echo "llm; sys_platform == 'never'")
    "$venv/bin/python" -I -c "import $module; print('$package', 'imports alone:', len($module.__all__), 'public names', '(extras: ${extras:-none})')"
done
