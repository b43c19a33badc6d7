// What a run trains (REFERENCE.md, "Baselines the paper compares against"):
// - edge-popup: the scores S of frozen random weights W; W_eff = W * h(|S|), h = 1 on the layer's
//   top-k of |S|; dL/dS = sign(S) * W * dL/dW_eff (straight-through).
// - dense: the weights themselves, from the same random init; W_eff = W, dL/dW = dL/dW_eff.
// - supermask (Zhou et al. 2019): p = sigmoid(S), a mask sampled Bernoulli(p) at every forward
//   pass, W_eff = W * mask; dL/dS = W * dL/dW_eff * p (1 - p) (straight-through the sample).
//   The sample of step t is a pure function of (seed, layer, t, index), so every rank draws the
//   same mask; evaluation draws one fixed sample from a stream of its own (`Model.updateMasks`).

public enum TrainingMethod: String, CaseIterable, Sendable {
    case edgePopup = "edge-popup"
    case dense
    case supermask

    /// What the trained parameters are called in messages and files.
    public var parameterName: String { self == .dense ? "weights" : "scores" }

    /// Defaults of the paper's runs of this method: edge-popup as the small-scale `sc` configs,
    /// dense as the SGD baselines (the reference's parser defaults: unscaled Kaiming normal),
    /// supermask as Zhou et al. (no top-k fraction, so no fan scaling by k).
    public var defaultLR: Double {
        switch self { case .edgePopup: return 0.1; case .dense: return 0.01; case .supermask: return 200 }
    }
    public var defaultWeightDecay: Double { self == .supermask ? 0 : 1e-4 }
    public var defaultInit: WeightInit { self == .dense ? .kaimingNormal : .signedConstant }
    public var defaultScaleFan: Bool { self == .edgePopup }
}
