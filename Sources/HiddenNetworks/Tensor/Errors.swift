// Failures at the boundary become one typed error with a message and a hint for the fix.

public struct HiddenError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let hint: String?
    public init(_ message: String, hint: String? = nil) { self.message = message; self.hint = hint }
    public var description: String {
        hint.map { "\(message)\nhint: \($0)" } ?? message
    }
}
