"""Robust invisible watermark: a 40-bit record id that survives JPEG, resizing and cropping.

The package, in the order a mark is made and read: :mod:`.code` (the payload's CRC and convolutional
code), :mod:`.tiling` (the keyed layout of the tile's Fourier units), :mod:`.planes` (the analysis both
sides share: Haar planes, whitening, the tile fold, soft bits), :mod:`.embedding` (:func:`embed`) and
:mod:`.detection` (:func:`detect`, :func:`original_frame`). The design notes below are the whole
mark's, one story read top to bottom; each module's docstring says which part it holds.

Design (why each piece is there)
--------------------------------
* **Where.** Three planes of the approximation band of a one-level Haar DWT (``pywt.dwt2``):
  luma (Y, added equally to R, G and B: no colour shift) and the two BT.601 chroma planes
  (Cb, Cr, added along the inverse-YCbCr directions: no luma change, no cross-talk). The luma
  mark is band-limited to spatial periods of 6.4-14 image pixels: high enough that image
  content (1/f^2 spectrum) interferes little, low enough to survive JPEG Q50 and a 0.5x resize.
  The chroma mark sits lower, at 10.7-32 px periods, because JPEG subsamples chroma 2x and
  quantises it coarsely: at those periods 0.35-0.85 of its amplitude survives Q50 (the
  longer periods best; at 6-10 px almost none does). Why chroma at all:
  on dense texture the luma host swamps any mark at a PSNR we accept (``night-grass``, grass
  blades at exactly the luma band, is ~25 dB noisier in luma than in chroma, where natural
  photos, and JPEG-decoded ones even more, carry little energy). A 30 % share of the mark's
  mean-square error goes to chroma (measured: shares of 15-70 % all decoded the bench set;
  20-30 % left the best worst-case margins after JPEG Q50 and the combined attack). Chroma is
  analysed one Haar level further down (its band allows it: 4x fewer samples).
* **What.** A periodic tile of ``TILE`` x ``TILE`` DWT samples (128x128 image pixels) repeated
  over the whole image, so any crop that keeps >= one tile's worth of area still holds every
  bit. The tile is built in the Fourier domain: each of its ~1700 "units" (the real or the
  imaginary part of one in-band frequency bin of one plane; ~960 luma, ~360 per chroma plane)
  is assigned, by a keyed PRNG, either to the **sync** template (25 %, known to the detector)
  or to one of the 140 coded bits, with a random sign; every plane carries every coded bit.
  Units are orthogonal, so bits do not interfere with each other.
* **Payload.** 40-bit id + CRC-24 (OpenPGP polynomial) -> 64 bits -> K=7 rate-1/2
  convolutional code (the NASA 171/133 code) -> 140 coded bits, decoded by soft Viterbi. A
  decode is accepted only when the CRC matches, so a clean or badly damaged image gives
  ``payload=None``, never someone else's id (false accept ~ candidates x 2^-24 per image).
* **Strength.** Scaled to an exact target PSNR (default 40 dB) after a mild texture mask
  (more in busy areas, less in flat ones). Informed embedding (ISS, lambda=0.5, per plane): the
  host image's own projection onto the payload units is measured and half of it cancelled.
  Then ``embed`` predicts its own margin (soft-bit SNR against the codeword) on each half of
  the image and after a real JPEG Q50 round trip, and an image below ``_MARGIN_TARGET`` gets a
  stronger mark, down to the ``min_psnr_db`` floor (38 dB).
* **Detection.** Whiten each plane (local high-pass / local activity, clipped), fold it modulo
  the tile period (every tile adds coherently; content averages out), FFT the folds, find the
  shift by cross-correlating with the sync template (the planes' normalised surfaces summed,
  plus each plane's own best peak as a candidate; sub-pixel peak). Soft decision: per plane,
  the sync units give the mark amplitude and noise level, and every unit enters its coded bit
  with weight SNR/noise (maximum-ratio combining of all tile copies and planes: whichever
  plane an image or an attack left intact carries the decode, a greyscale copy still decodes
  on luma), Viterbi, CRC. Scale: scale 1 is tried first; if that does not decode, a
  Fourier-magnitude "comb" over every plane's sync frequencies proposes scales in 0.28-2.1x
  (its best proposal was within 0.25 % of the truth on every test image), each refined by a
  3-point search on the sync peak. Below 0.7x the full-resolution image is used instead of the
  DWT band (a 0.5x resize is then a no-op).
* **Fail closed.** ``embed`` refuses images under ``MIN_SIDE`` and, by default, reads its own
  output back; if the payload does not come back it raises :class:`WatermarkError` instead of
  returning an image whose mark would not be found.

No torch, no model download: numpy, OpenCV, PyWavelets.

Measured with ``python bench/watermark.py`` on the shared 2-core CPU (52 images: demo photos at
512 and 1024 px, 8 real look-engine outputs, crops, synthetic; 1092 clean decodes):

    attack                     TPR     FPR          | stock dwtDct  dwtDctSvd  rivaGan (6 imgs)
    none                       1.000   0/52         |  0.635        1.000      1.000
    JPEG Q50                   1.000   0/208        |  0.000        0.154      0.500
    JPEG Q75                   1.000   0/208        |  0.000        0.769      0.833
    resize 0.5x                1.000   0/208        |  0.000        0.000      0.000
    crop to 50 % area          1.000   0/208        |  0.000        0.000      1.000
    JPEG75 + 0.75x + crop 80 % 1.000   0/208        |  0.000        0.000      0.500
    PSNR 39.95 dB mean, 38.20 min; embed + detect at 1024x1024: 60 ms (rivaGan ~16 s).

Margins (soft-bit SNR of the decode against the true codeword, same 52 images, 3 seeds of
payloads and crop positions; Viterbi + CRC loses ~7 % of frames at 1.2 and 0.25 % at 1.4):
worst case 2.3 (JPEG Q50 on night-grass, the combined attack on gravel-path / deep-field /
cold-cat); 10th percentile 3.2 after JPEG Q50, 3.8 after a 50 % crop, 2.9 after the combined
attack. Beyond the targets, on the same 52 images: PIL JPEG 50, WebP 75, a crop to 25 % of the
area, a 1.8x upscale and JPEG 50 + 0.5x all decode 52/52; JPEG Q30, a 0.35x resize and a
greyscale copy 51/52 (misses: night-grass at Q30 and in greyscale, where only luma is left
and its texture wins; the 512 px selfie at 0.35x = 179 px). 0 false ids in another 2184 clean
decodes (greyscale, JPEG, crops, 0.6x and 1.3x resizes). Mirror copies and quarter turns are
undone by trying the seven other orientations (at the original scale). A copy turned by a few
degrees (a phone's "straighten", up to 10°, resized 0.6-1.6x) is found last: the sync template's
frequencies turn with the picture, so its Fourier comb is scored over angle and scale (0.5° / 1 %
on a dilated spectrum, then 0.05° / 0.25 %), and the copy is turned back and decoded; every 3-9°
turn of the bench images came back to 0.05°. Brightness, contrast, gamma and saturation edits and
a light blur leave the whitened mark almost untouched. Not handled: perspective, resizes outside
0.28-2.1x, and thumbnails under about 0.3x saved as JPEG (a 0.25x JPEG-70 thumbnail keeps too
little: its luma band ends above the thumbnail's Nyquist and JPEG's chroma subsampling takes the
chroma planes; the record's picture fingerprint finds those instead, see :mod:`.fingerprint`).
A fourth plane, luma at periods 16-43 px with 15-40 % of the mark's energy, was tried for thumbnails:
it decoded at most ~40 % of them (JPEG 70 quantises what the 128-px tile leaves of that band), so it is
not in the mark.

``DEFAULT_KEY`` is for tests and the bench only: a store marks with its own secret key
(:mod:`.keys`), so nobody outside can write a mark that it reads.
"""

from __future__ import annotations

from ...errors import ProvenanceInputError as ProvenanceInputError
from ...errors import WatermarkError as WatermarkError
from ...errors import WatermarkTooSmallError as WatermarkTooSmallError
from .code import CRC_BITS as CRC_BITS
from .code import PAYLOAD_BITS
from .detection import Detection, detect, original_frame
from .embedding import chroma_axis as chroma_axis
from .embedding import embed, psnr
from .tiling import ALGORITHM, DEFAULT_KEY, MIN_SIDE
from .tiling import TILE as TILE

__all__ = [
    "ALGORITHM",
    "DEFAULT_KEY",
    "MIN_SIDE",
    "PAYLOAD_BITS",
    "Detection",
    "detect",
    "embed",
    "original_frame",
    "psnr",
]
