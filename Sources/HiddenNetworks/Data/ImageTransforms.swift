// The reference's ImageNet transforms (torchvision), as geometry plus one resampling step:
//
//   training:   RandomResizedCrop(S, scale (0.08, 1), ratio (3/4, 4/3)), RandomHorizontalFlip,
//               normalise with ImageNet's mean and std;
//   evaluation: Resize(S * 256 / 224) of the shorter side, CenterCrop(S), normalise.
//
// Both come down to "resample box B of the image to S x S": a crop then a resize equals a resize
// over the crop's box, and a resize then a centre crop equals a resize over the box the crop
// covers in the original. So an image is decoded once (at a DCT scale that keeps the box at least
// S pixels wide, JPEG.swift) and resampled once, straight into the network's CHW floats.
//
// Resampling is PIL's antialiased bilinear (what torchvision runs on PIL images): the triangle
// filter, widened by the downscale factor, weights normalised per output pixel, horizontal pass
// then vertical; computed in float, without PIL's 8-bit rounding between the passes.
//
// The randomness of a sample (crop attempts, position, flip) is a pure function of (seed, epoch,
// sample index), so it does not depend on the number of ranks or on a resume.

import Foundation

/// A box in image coordinates (pixels, fractional allowed): x0 <= x < x1, y0 <= y < y1.
public struct ImageBox: Equatable, Sendable {
    public var x0, y0, x1, y1: Double
    public init(x0: Double, y0: Double, x1: Double, y1: Double) { self.x0 = x0; self.y0 = y0; self.x1 = x1; self.y1 = y1 }
    public var width: Double { x1 - x0 }
    public var height: Double { y1 - y0 }
    /// The same box in an image scaled by (sx, sy).
    public func scaled(_ sx: Double, _ sy: Double) -> ImageBox { ImageBox(x0: x0 * sx, y0: y0 * sy, x1: x1 * sx, y1: y1 * sy) }
}

public enum ImageTransforms {
    /// ImageNet's per-channel mean and std (torchvision's, as the reference normalises).
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// torchvision's RandomResizedCrop.get_params for a width x height image: ten tries of an area
    /// fraction in [0.08, 1] and a log-uniform aspect ratio in [3/4, 4/3]; the first crop that
    /// fits is taken at a uniform position; otherwise the centre crop of the whole image clamped to
    /// the ratio range. `uniform(k)` gives the k-th uniform number of the sample, in (0, 1).
    public static func randomResizedCrop(width: Int, height: Int, uniform: (Int) -> Double) -> (x: Int, y: Int, w: Int, h: Int) {
        let area = Double(width * height)
        let logLo = log(3.0 / 4.0), logHi = log(4.0 / 3.0)
        for attempt in 0..<10 {
            let target = area * (0.08 + (1 - 0.08) * uniform(4 * attempt))
            let ratio = exp(logLo + (logHi - logLo) * uniform(4 * attempt + 1))
            // Python's round: halves to even.
            let w = Int((target * ratio).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / ratio).squareRoot().rounded(.toNearestOrEven))
            if w > 0, h > 0, w <= width, h <= height {
                // torch.randint(0, H - h + 1): uniform over the positions that fit.
                let y = min(height - h, Int(uniform(4 * attempt + 2) * Double(height - h + 1)))
                let x = min(width - w, Int(uniform(4 * attempt + 3) * Double(width - w + 1)))
                return (x, y, w, h)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < 3.0 / 4.0 {
            h = Int((Double(w) / (3.0 / 4.0)).rounded(.toNearestOrEven))
        } else if inRatio > 4.0 / 3.0 {
            w = Int((Double(h) * (4.0 / 3.0)).rounded(.toNearestOrEven))
        }
        return ((width - w) / 2, (height - h) / 2, w, h)
    }

    /// The box that Resize(shorter side to `resize`) then CenterCrop(`size`) takes from a
    /// width x height image, in the image's own coordinates.
    public static func centerCropBox(width: Int, height: Int, resize: Int, size: Int) -> ImageBox {
        // torchvision: the shorter side becomes `resize`, the longer int(resize * long / short).
        let (rw, rh): (Int, Int) = width <= height
            ? (resize, Int(Double(resize) * Double(height) / Double(width)))
            : (Int(Double(resize) * Double(width) / Double(height)), resize)
        let top = Int((Double(rh - size) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(rw - size) / 2).rounded(.toNearestOrEven))
        let sx = Double(width) / Double(rw), sy = Double(height) / Double(rh)
        return ImageBox(x0: Double(left) * sx, y0: Double(top) * sy, x1: Double(left + size) * sx, y1: Double(top + size) * sy)
    }

    /// Per output pixel of a resample of [lo, hi) of an axis of `length` pixels to `out` pixels:
    /// the first input pixel and the normalised triangle-filter weights (PIL's precompute_coeffs).
    /// `clip`: the input pixels the filter may read, [0, length) by default (a resize of the whole
    /// image, as evaluation's); a crop's own pixels when the crop is resized (torchvision crops,
    /// then resizes: PIL's filter never reads past the crop).
    static func coefficients(lo: Double, hi: Double, length: Int, out: Int, clip: Range<Int>? = nil) -> [(first: Int, weights: [Float])] {
        let bounds = clip ?? 0..<length
        let scale = (hi - lo) / Double(out)
        let filterScale = max(scale, 1), support = filterScale  // bilinear: support 1, widened
        return (0..<out).map { o in
            let center = lo + (Double(o) + 0.5) * scale
            let first = max(bounds.lowerBound, Int(center - support + 0.5))
            let last = min(bounds.upperBound, Int(center + support + 0.5))
            var w = (first..<max(first, last)).map { i -> Double in
                let t = (Double(i) - center + 0.5) / filterScale
                return max(0, 1 - abs(t))
            }
            let total = w.reduce(0, +)
            if total > 0 { w = w.map { $0 / total } }
            return (first, w.map(Float.init))
        }
    }

    /// Resamples `box` of `image` to size x size and writes it normalised, channel-major
    /// ([3, size, size]) into `out`, mirrored left-right when `flip`. `cropped`: the filter reads
    /// only the box's pixels (its edges rounded outwards), as a resize after a crop does.
    public static func resample(_ image: RGBImage, box: ImageBox, size: Int, flip: Bool, cropped: Bool = false,
                                into out: UnsafeMutablePointer<Float>) {
        func span(_ lo: Double, _ hi: Double, _ n: Int) -> Range<Int>? {
            cropped ? max(0, Int(lo.rounded(.down)))..<min(n, Int(hi.rounded(.up))) : nil
        }
        let cx = coefficients(lo: box.x0, hi: box.x1, length: image.width, out: size, clip: span(box.x0, box.x1, image.width))
        let cy = coefficients(lo: box.y0, hi: box.y1, length: image.height, out: size, clip: span(box.y0, box.y1, image.height))
        // Horizontal pass over the rows the vertical pass needs: [rows, size, 3] floats.
        let rowLo = cy.map(\.first).min() ?? 0
        let rowHi = cy.map { $0.first + $0.weights.count }.max() ?? 0
        var horizontal = [Float](repeating: 0, count: max(0, rowHi - rowLo) * size * 3)
        image.pixels.withUnsafeBufferPointer { px in
            for r in rowLo..<rowHi {
                let row = px.baseAddress! + r * image.width * 3
                for (o, c) in cx.enumerated() {
                    var acc: (Float, Float, Float) = (0, 0, 0)
                    for (k, w) in c.weights.enumerated() {
                        let p = row + (c.first + k) * 3
                        acc.0 += w * Float(p[0]); acc.1 += w * Float(p[1]); acc.2 += w * Float(p[2])
                    }
                    let h = ((r - rowLo) * size + o) * 3
                    horizontal[h] = acc.0; horizontal[h + 1] = acc.1; horizontal[h + 2] = acc.2
                }
            }
        }
        let plane = size * size
        for (oy, c) in cy.enumerated() {
            for ox in 0..<size {
                var acc: (Float, Float, Float) = (0, 0, 0)
                for (k, w) in c.weights.enumerated() {
                    let h = ((c.first + k - rowLo) * size + ox) * 3
                    acc.0 += w * horizontal[h]; acc.1 += w * horizontal[h + 1]; acc.2 += w * horizontal[h + 2]
                }
                let o = oy * size + (flip ? size - 1 - ox : ox)
                out[o] = (acc.0 / 255 - mean[0]) / std[0]
                out[plane + o] = (acc.1 / 255 - mean[1]) / std[1]
                out[2 * plane + o] = (acc.2 / 255 - mean[2]) / std[2]
            }
        }
    }
}
