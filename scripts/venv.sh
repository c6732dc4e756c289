# Sourced by client-tests.sh and difftest.sh: creates or reuses the Python venv of the driver
# tests (FLOE_VENV, default ~/.cache/floe-venv) and installs tests/clients/requirements.txt
# into it (skipped while the requirements file is unchanged). Sets $venv.
venv="${FLOE_VENV:-$HOME/.cache/floe-venv}"
requirements=tests/clients/requirements.txt
stamp="$venv/.floe-requirements.sha256"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
    echo "$want" >"$stamp"
fi
