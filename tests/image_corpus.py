"""A folder of what readers hand the scripts: every awkward kind of valid image, and every kind
of broken file, all generated here.

`write_valid(folder)` returns {name: (width, height) once upright}; `write_broken(folder)`
returns {name: the words the refusal must contain}. The picture behind the valid ones is a
40x30 warm-red left half and cool-blue right half, so orientation and colour can be checked.
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 40, 30
RED, BLUE = (220, 40, 30), (30, 60, 210)
BOMB_SIDE = 40_000


def picture():
    pixels = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:, :WIDTH // 2], pixels[:, WIDTH // 2:] = RED, BLUE
    return Image.fromarray(pixels)


def _exif_rotated(path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    picture().save(path, format="JPEG", exif=exif)


def _with_alpha(path):
    rgba = picture().convert("RGBA")
    alpha = np.full((HEIGHT, WIDTH), 255, np.uint8)
    alpha[:, :5] = 0  # a see-through strip: laid on white
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(path)


def _palette_transparent(path):
    palette = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    palette.info["transparency"] = 0
    palette.save(path, transparency=0)


def _animated(path, format):
    frames = [Image.new("RGB", (WIDTH, HEIGHT), RED), Image.new("RGB", (WIDTH, HEIGHT), BLUE)]
    frames[0].save(path, format=format, save_all=True, append_images=frames[1:], duration=100,
                   loop=0)


def _sixteen_bit(path, format="PNG"):
    deep = (np.asarray(picture().convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(path, format=format)


def _float_tiff(path):
    Image.fromarray(np.asarray(picture().convert("L"), np.float32)).save(path, format="TIFF")


def _converted(mode, format):
    return lambda path: picture().convert(mode).save(path, format=format)


VALID = {
    "photo.jpg": _converted("RGB", "JPEG"),
    "gray.jpg": _converted("L", "JPEG"),
    "cmyk.jpg": _converted("CMYK", "JPEG"),
    "progressive.jpg": lambda path: picture().save(path, format="JPEG", progressive=True),
    "exif_rotated.jpg": _exif_rotated,
    "UPPER.JPEG": _converted("RGB", "JPEG"),
    "photo.png": _converted("RGB", "PNG"),
    "alpha.png": _with_alpha,
    "gray_alpha.png": _converted("LA", "PNG"),
    "palette_transparent.png": _palette_transparent,
    "sixteen_bit.png": _sixteen_bit,
    "one_bit.png": _converted("1", "PNG"),
    "animated.gif": lambda path: _animated(path, "GIF"),
    "animated.png": lambda path: _animated(path, "PNG"),
    "photo.webp": _converted("RGB", "WEBP"),
    "alpha.webp": _converted("RGBA", "WEBP"),
    "photo.bmp": _converted("RGB", "BMP"),
    "float.tif": _float_tiff,
    "sixteen_bit.tif": lambda path: _sixteen_bit(path, "TIFF"),
    "cmyk.tif": _converted("CMYK", "TIFF"),
    "png_named.jpg": _converted("RGB", "PNG"),  # the name says JPEG; the bytes decide
}


def write_valid(folder):
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, write in VALID.items():
        write(folder / name)
        sizes[name] = (HEIGHT, WIDTH) if name == "exif_rotated.jpg" else (WIDTH, HEIGHT)
    Image.new("RGB", (1, 1), RED).save(folder / "one_pixel.png")
    sizes["one_pixel.png"] = (1, 1)
    Image.new("RGB", (600, 12), BLUE).save(folder / "panorama.jpg")
    sizes["panorama.jpg"] = (600, 12)
    return sizes


def noisy_jpeg(size=(96, 80)):
    """A JPEG big and busy enough that cutting it leaves whole scan lines undecoded."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).save(
        buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def noisy_png(size=(96, 80)):
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def bomb_png(side=BOMB_SIDE):
    """A valid 1-bit PNG of side x side white pixels: about 200 kB on disk, 1.6 GB once
    decoded by Pillow (one byte a pixel). Decoding it is exactly what must not happen."""
    row = b"\x00" + b"\xff" * ((side + 7) // 8)  # filter byte, then the packed bits
    compressor, chunks = zlib.compressobj(9), []
    block = row * 1000
    for _ in range(side // 1000):
        chunks.append(compressor.compress(block))
    chunks.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", b"".join(chunks)) + _png_chunk(b"IEND", b""))


HTML_ERROR_PAGE = (b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
                   b"<body><h1>Not Found</h1><p>The requested URL was not found.</p></body>"
                   b"</html>\n")


def write_broken(folder, bomb=None):
    """The broken kinds; `bomb` is the bytes of bomb_png() when a caller already made them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    jpeg, png = noisy_jpeg(), noisy_png()
    (folder / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    (folder / "truncated.png").write_bytes(png[:len(png) // 2])
    (folder / "error_page.png").write_bytes(HTML_ERROR_PAGE)
    (folder / "bomb.png").write_bytes(bomb or bomb_png())
    (folder / "folder.jpg").mkdir()
    return {"empty.jpg": "is not an image",
            "truncated.jpg": "is damaged or truncated",
            "truncated.png": "is damaged or truncated",
            "error_page.png": "is not an image",
            "bomb.png": f"{BOMB_SIDE:,}x{BOMB_SIDE:,} = {BOMB_SIDE ** 2:,} pixels, over the "
                        f"limit of",
            "folder.jpg": "is a folder, not an image"}
