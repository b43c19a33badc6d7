// A residual block (He et al. 2016): y = relu(branch(x) + shortcut(x)), where the shortcut is the
// identity or a projection (strided 1x1 convolution + batch norm) when the stride or the width
// changes. The block owns its layers and their activations; backward sends dL/d(sum) through
// both paths and adds the two input gradients. x: [B, C, H, W], y: [B, C', H', W'].
// The block's end costs one pass: where the branch ends in a plain non-affine batch norm (every
// edge-popup and supermask ResNet), that batch norm, the add and the ReLU run together
// (BatchNorm2d.forwardAddRelu / backwardAddRelu), with the bits of the three done one by one.
// The dense baseline's affine batch norm keeps its own pass.
// The add costs no pass of its own backward: with the identity shortcut, dL/d(sum) is written into dx and
// the branch's first convolution adds its input gradient to it; with a projection, the branch
// writes dx and the projection's convolution adds to it (MaskedConv2d.accumulatesInputGradient).
//
//   basic (ResNet-18/34):      conv3x3/s - bn+relu - conv3x3 - bn
//   bottleneck (ResNet-50+):   conv1x1 - bn+relu - conv3x3/s - bn+relu - conv1x1 (x4) - bn
//   (bn+relu: batch norm with its ReLU fused in, one layer; see BatchNorm2d)
//                              (the stride sits on the 3x3, "ResNet v1.5", as torchvision and the reference)

public final class ResidualBlock: Layer {
    public let kind: String
    public let inputShape: Shape
    public let outputShape: Shape
    public let branch: [Layer]
    /// Empty for the identity shortcut.
    public let shortcut: [Layer]
    /// Branch then shortcut, stored: the step loop asks for it and must not build an array.
    public let children: [Layer]
    public var forwardFLOPsPerSample: Int { children.reduce(0) { $0 + $1.forwardFLOPsPerSample } }
    private var branchOut: [FloatBuffer] = []
    private var shortcutOut: [FloatBuffer] = []
    /// dL/d(sum) (projection blocks only: an identity block keeps it in dx, see backward), and
    /// two buffers the gradient ping-pongs between inside a path.
    private var sumGrad = FloatBuffer(count: 0), gradA = FloatBuffer(count: 0), gradB = FloatBuffer(count: 0)
    private var reserved = 0
    /// The branch's last layer, run together with the add and the ReLU; nil for an affine one.
    private let end: BatchNorm2d?
    /// Whether the block runs its end in one pass (set before the first reserve; tests compare).
    var fusesEnd: Bool

    /// The basic block of ResNet-18/34: two 3x3 convolutions, the first with the stride.
    public static func basic(input: Shape, planes: Int, stride: Int, k: Double, norm: BatchNormContext) throws -> ResidualBlock {
        let conv1 = try MaskedConv2d(input: input, outChannels: planes, kernel: 3, stride: stride, padding: 1, k: k)
        let bn1 = BatchNorm2d(input: conv1.outputShape, context: norm, relu: true)
        let conv2 = try MaskedConv2d(input: bn1.outputShape, outChannels: planes, kernel: 3, stride: 1, padding: 1, k: k)
        let bn2 = BatchNorm2d(input: conv2.outputShape, context: norm)
        return try ResidualBlock(kind: "basic-block", input: input, branch: [conv1, bn1, conv2, bn2],
                                 stride: stride, k: k, norm: norm)
    }

    /// The bottleneck of ResNet-50 and up: 1x1 down to `width`, 3x3 with the stride, 1x1 up to
    /// 4 x planes. `width` is planes, or 2 x planes in the wide ResNets.
    public static func bottleneck(input: Shape, planes: Int, width: Int, stride: Int, k: Double,
                                  norm: BatchNormContext) throws -> ResidualBlock {
        let conv1 = try MaskedConv2d(input: input, outChannels: width, kernel: 1, stride: 1, padding: 0, k: k)
        let bn1 = BatchNorm2d(input: conv1.outputShape, context: norm, relu: true)
        let conv2 = try MaskedConv2d(input: bn1.outputShape, outChannels: width, kernel: 3, stride: stride, padding: 1, k: k)
        let bn2 = BatchNorm2d(input: conv2.outputShape, context: norm, relu: true)
        let conv3 = try MaskedConv2d(input: bn2.outputShape, outChannels: planes * 4, kernel: 1, stride: 1, padding: 0, k: k)
        let bn3 = BatchNorm2d(input: conv3.outputShape, context: norm)
        return try ResidualBlock(kind: "bottleneck", input: input, branch: [conv1, bn1, conv2, bn2, conv3, bn3],
                                 stride: stride, k: k, norm: norm)
    }

    /// A block around `branch`, with a projection shortcut where the branch changes the shape.
    init(kind: String, input: Shape, branch: [Layer], stride: Int, k: Double, norm: BatchNormContext) throws {
        self.kind = kind
        inputShape = input
        outputShape = branch.last!.outputShape
        self.branch = branch
        if outputShape == input {
            shortcut = []
        } else {
            let projection = try MaskedConv2d(input: input, outChannels: outputShape.dims[0], kernel: 1, stride: stride, padding: 0, k: k)
            guard projection.outputShape == outputShape else {
                throw HiddenError("a \(kind) on \(input) gives \(outputShape) but its projection shortcut gives \(projection.outputShape)")
            }
            shortcut = [projection, BatchNorm2d(input: outputShape, context: norm)]
        }
        children = branch + shortcut
        end = (branch.last as? BatchNorm2d).flatMap { $0.affine == nil && !$0.relu ? $0 : nil }
        fusesEnd = end != nil
        // The convolution that reads the block's input on the path backward finishes last adds
        // its input gradient to the other path's.
        guard let adder = (shortcut.isEmpty ? branch.first : shortcut.first) as? MaskedConv2d else {
            throw HiddenError("a \(kind)'s branch and projection must start with a convolution")
        }
        adder.accumulatesInputGradient = true
    }

    public func reserve(batch: Int) {
        guard batch > reserved else { return }
        reserved = batch
        // A fused end writes the block's output straight away and keeps no x-hat.
        branchOut = branch.enumerated().map { i, layer in
            FloatBuffer(count: fusesEnd && i == branch.count - 1 ? 0 : batch * layer.outputShape.count)
        }
        shortcutOut = shortcut.map { FloatBuffer(count: batch * $0.outputShape.count) }
        // Inside a path only: both paths' input gradients go straight into the block's dx.
        let largest = children.map(\.outputShape.count).max()!
        sumGrad = FloatBuffer(count: shortcut.isEmpty ? 0 : batch * outputShape.count)
        gradA = FloatBuffer(count: batch * largest)
        gradB = FloatBuffer(count: batch * largest)
        for layer in children { layer.reserve(batch: batch) }
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        reserve(batch: batch)  // a no-op once the model reserved its largest batch
        if let end, fusesEnd {
            let a = ResidualBlock.forward(branch.dropLast(), branchOut, x, batch: batch)
            let s = shortcut.isEmpty ? x : ResidualBlock.forward(shortcut[...], shortcutOut, x, batch: batch)
            LayerProfile.shared.time("batchnorm-add-relu") { end.forwardAddRelu(a, shortcut: s, y, batch: batch) }
            return
        }
        let a = ResidualBlock.forward(branch[...], branchOut, x, batch: batch)
        let s = shortcut.isEmpty ? x : ResidualBlock.forward(shortcut[...], shortcutOut, x, batch: batch)
        let n = batch * outputShape.count
        LayerProfile.shared.time("residual-add") {
            addRelu(a, s, y, count: n)
        }
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        let n = batch * outputShape.count
        // dL/d(sum) = dy where the output's ReLU passed (y > 0). With the identity shortcut it
        // goes straight into dx (the same shape), where the branch's first convolution, the last
        // layer backward reaches, adds its own input gradient; until then nothing writes dx.
        // Without dx it goes to gradB: only the branch's last layer reads it, and that layer
        // writes gradA; gradB is next written by the layer before, after that read.
        let g = shortcut.isEmpty ? dx ?? gradB.pointer : sumGrad.pointer
        if let end, fusesEnd {
            // The end's input gradient goes to gradA, the layer before it reads it from there
            // and writes gradB (g, if it is gradB, is read by then).
            let last = branch.count - 1
            LayerProfile.shared.time("batchnorm-add-relu") {
                end.backwardAddRelu(branchOut[last - 1].pointer, y, dy, sumGrad: g, gradA.pointer, batch: batch)
            }
            backward(branch.dropLast(), branchOut, x, UnsafePointer(gradA.pointer), into: dx, batch: batch, firstOut: gradB)
        } else {
            LayerProfile.shared.time("residual-add") { reluBackward(y, dy, g, count: n) }
            backward(branch[...], branchOut, x, UnsafePointer(g), into: dx, batch: batch)
        }
        // The projection's convolution adds its input gradient to the branch's in dx.
        if !shortcut.isEmpty { backward(shortcut[...], shortcutOut, x, UnsafePointer(g), into: dx, batch: batch) }
    }

    /// Runs `layers` in order, each into its own output buffer; returns the last output.
    private static func forward(_ layers: ArraySlice<Layer>, _ outs: [FloatBuffer], _ x: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        var input = x
        for (layer, out) in zip(layers, outs) {
            layer.profiledForward(input, out.pointer, batch: batch)
            input = UnsafePointer(out.pointer)
        }
        return input
    }

    /// Backward through `layers` from dL/d(last output) = `dy`, the intermediate gradients
    /// alternating between gradA and gradB (the last layer's into `firstOut`), the first layer's
    /// input gradient into `dx`.
    private func backward(_ layers: ArraySlice<Layer>, _ outs: [FloatBuffer], _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                          into dx: UnsafeMutablePointer<Float>?, batch: Int, firstOut: FloatBuffer? = nil) {
        var grad = dy
        let (even, odd) = firstOut === gradB ? (gradB, gradA) : (gradA, gradB)
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let input = i == 0 ? x : UnsafePointer(outs[i - 1].pointer)
            let out: UnsafeMutablePointer<Float>? = i == 0 ? dx : ((layers.count - 1 - i) % 2 == 0 ? even.pointer : odd.pointer)
            layers[i].profiledBackward(input, UnsafePointer(outs[i].pointer), grad, out, batch: batch)
            if let out { grad = UnsafePointer(out) }
        }
    }
}
