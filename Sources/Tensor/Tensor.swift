import CBLAS
public func blasCoreName() -> String { String(cString: openblas_get_corename()) }
