"""Render resources/icons/memdesk.svg to the PNG sizes each installer needs.

    python installers/render_icons.py OUTDIR [--ico FILE] [--iconset DIR] [--svg FILE]

OUTDIR gets memdesk-16.png ... memdesk-1024.png; --ico writes a Windows icon (16..256 px),
--iconset a macOS .iconset folder for `iconutil -c icns`. Rendering uses Qt's SVG renderer, which
the build venv has anyway, so no build machine needs rsvg-convert, Inkscape or Pillow.
"""
from __future__ import annotations

import argparse
import os
import struct
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest an .ico entry can say it is
# iconutil accepts exactly these names; each @2x file is the next size up drawn for a Retina screen.
ICONSET = {f"icon_{s}x{s}{suffix}.png": s * scale
           for s in (16, 32, 128, 256, 512) for suffix, scale in (("", 1), ("@2x", 2))}
DEFAULT_SVG = Path(__file__).resolve().parent.parent / "resources" / "icons" / "memdesk.svg"


def render(svg: Path, sizes) -> dict[int, bytes]:
    """PNG bytes for each size, drawn straight from the vector (no downscaling blur at 16 px)."""
    # A headless build machine (CI, SSH) has no display; nothing here needs one.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (kept alive)
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        sys.exit(f"render_icons: {svg} is not an SVG Qt can read")
    out = {}
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        buffer.close()
        out[size] = bytes(data)
    return out


def write_ico(path: Path, pngs: dict[int, bytes]) -> None:
    """An .ico whose entries are PNGs (what Pillow writes too; Windows reads them since Vista).
    Written by hand because Qt's ico plugin stores one image per file."""
    sizes = [s for s in ICO_SIZES if s in pngs]
    offset = 6 + 16 * len(sizes)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    entries, blobs = b"", b""
    for size in sizes:
        blob = pngs[size]
        # A width or height byte of 0 means 256.
        entries += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(blob), offset + len(blobs))
        blobs += blob
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + entries + blobs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="folder for memdesk-SIZE.png")
    parser.add_argument("--ico", type=Path, help="also write this Windows .ico (16..256 px)")
    parser.add_argument("--iconset", type=Path, help="also write this macOS .iconset folder")
    parser.add_argument("--svg", type=Path, default=DEFAULT_SVG, help="source SVG (default: %(default)s)")
    args = parser.parse_args(argv)

    pngs = render(args.svg, SIZES)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for size, blob in pngs.items():
        (args.outdir / f"memdesk-{size}.png").write_bytes(blob)
    if args.ico:
        write_ico(args.ico, pngs)
    if args.iconset:
        args.iconset.mkdir(parents=True, exist_ok=True)
        for name, size in ICONSET.items():
            (args.iconset / name).write_bytes(pngs[size])
    return 0


if __name__ == "__main__":
    sys.exit(main())
