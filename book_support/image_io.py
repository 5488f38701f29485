"""Opening a reader's images: any format and mode Pillow reads, as upright 8-bit RGB.

Holds IMAGE_SUFFIXES, open_image (header only: missing, folder, not an image, decompression
bomb, each one line), open_rgb (decoded, EXIF-upright, transparency on white, 16-bit and float
scaled), centre_square, and UnreadableImages (the many-image scripts' report of bad files).
Only errors a decoder raises for a bad file become "damaged or truncated"; any other exception
is a bug in the caller or here, and is left to show as one.
"""

import struct
import sys
import warnings
import zlib
from pathlib import Path

from book_support.plumbing import UserError, program_name

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# A 200-megapixel phone photo fits; a "decompression bomb" (a small file declaring, say,
# 40000x40000 pixels, which would take gigabytes to decode) does not.
MAX_IMAGE_PIXELS = 2**28
# What Pillow's decoders raise for a file that is damaged or truncated: OSError ("image file
# is truncated", "broken data stream"), SyntaxError (a bad chunk or marker), struct.error and
# EOFError (a header cut short), ValueError and zlib.error (impossible sizes, bad compressed
# data).
DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


def centre_square(image, size):
    """A PIL image resized so its shorter side is `size`, then its centre size x size cut."""
    from PIL import Image

    if image.size == (size, size):
        return image
    scale = size / min(image.size)
    width, height = (max(size, round(side * scale)) for side in image.size)
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def open_image(path):
    """The image file at `path`, opened but not decoded: only its header has been read.

    Everything that can be told from the header is a UserError naming the file: a missing
    file, a folder, a file that is no image Pillow knows, and one with more than
    MAX_IMAGE_PIXELS pixels, refused before a single pixel is decoded.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image")
    # Pillow's own guard warns, or past twice its limit fails without giving the size; it is
    # switched off for the call so that the check below, with the size in its words, decides.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = Image.open(path)
        except FileNotFoundError:
            raise UserError(f"{path} does not exist") from None
        except PermissionError:
            raise UserError(f"{path} cannot be read (permission denied)") from None
        except UnidentifiedImageError as error:
            raise UserError(f"{path} is not an image ({_what_it_is(path, error)})") from None
        except DECODER_ERRORS as error:  # a format was recognised, then its header was bad
            raise UserError(f"{path} is damaged or truncated ({_reason(error)})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise UserError(f"{path} is refused: {width:,}x{height:,} = {width * height:,} pixels, "
                        f"over the limit of {MAX_IMAGE_PIXELS:,} (a decompression bomb?)")
    return image


def open_rgb(path, at_least=None):
    """Any image file as an upright 8-bit RGB PIL image.

    EXIF rotation is applied, transparency is laid on white, 16-bit and float images are scaled
    (not clipped) to 0..255, palette/CMYK/grayscale become RGB, an animation gives its first
    frame. With `at_least`, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale as long as both
    sides stay at least that many pixels: much faster for photos that will be shrunk anyway.
    What open_image refuses, and a file that cannot be decoded (truncated, damaged), is a
    UserError naming it.
    """
    from PIL import Image

    with open_image(path) as image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                return _upright_rgb(image, at_least)
        except MemoryError:
            raise UserError(f"{path} is too large to decode in the free memory") from None
        except DECODER_ERRORS as error:  # a damaged file fails inside whichever decoder reads it
            raise UserError(f"{path} is damaged or truncated ({_reason(error)})") from None


def _upright_rgb(image, at_least):
    import numpy as np
    from PIL import Image, ImageOps

    if at_least and image.format == "JPEG":
        image.draft("RGB", (at_least, at_least))
    try:
        image = ImageOps.exif_transpose(image)
    except (*DECODER_ERRORS, KeyError, TypeError):  # a malformed EXIF block: the pixels
        # are still good, shown as stored
        pass
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        high = 65535.0 if values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values * (255.0 / high), 0, 255).round()
                                .astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def _what_it_is(path, error):
    """What a file that no image format recognises starts with: an HTML error page saved
    under an image's name shows itself."""
    with open(path, "rb") as stream:
        start = stream.read(24)
    if not start:
        return "the file is empty"
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in start)
    return f"no image format starts like this: {text!r}"


def _reason(error):
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class UnreadableImages:
    """The images of one run that could not be read. Each is named on stderr, with why, as it
    is met, so that the others are still done; at the end every script that takes many images
    prints the same summary and exits the same way (1 when any failed)."""

    def __init__(self, total):
        self.total, self.count = total, 0

    def report(self, error):
        print(f"{program_name()}: error: {error}", file=sys.stderr, flush=True)
        self.count += 1

    def each(self, paths, read):
        """(path, read(path)) for every path that `read` can take; the others are reported."""
        for path in paths:
            try:
                yield path, read(path)
            except UserError as error:
                self.report(error)

    def exit_code(self):
        if not self.count:
            return 0
        print(f"{program_name()}: {self.count} of {self.total} images could not be read",
              file=sys.stderr)
        return 1
