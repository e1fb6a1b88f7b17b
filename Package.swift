// swift-tools-version:5.9
import PackageDescription

// Layering (arrows point down only): episodic → Train → DataParallel → {Tensor, Data, Sampling, Metrics}
// → {CBLAS, CKernels, CNIfTI, MPIShim}. Nothing in Tensor knows MPI; Sampling knows no tensors.
let package = Package(
    name: "Episodic",
    products: [
        .executable(name: "episodic", targets: ["episodic"]),
    ],
    targets: [
        // Open MPI: its handles (MPI_COMM_WORLD, MPI_FLOAT, ...) are macros; the shim header turns them into functions.
        .systemLibrary(name: "MPIShim", path: "Sources/MPIShim", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        // nifticlib ships no .pc file and its headers need /usr/include/nifti on the path (nifti1_io.h includes
        // <znzlib.h>), so it is a small C target whose public header exposes only our own shim.
        .target(name: "CNIfTI", path: "Sources/CNIfTI",
                cSettings: [.unsafeFlags(["-I/usr/include/nifti"])],
                linkerSettings: [.linkedLibrary("niftiio"), .linkedLibrary("znz"), .linkedLibrary("z"), .linkedLibrary("m")]),
        // AVX-512 sgemm for the skinny im2col shapes (M = 32/64) where OpenBLAS 0.3.21 is memory-bound; chosen at run
        // time only on CPUs that have AVX-512 (the file carries its own target attributes, the binary stays portable).
        // Always optimised: at -O0 the kernels would be 30× slower than OpenBLAS and make debug test runs crawl.
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Stateless counter-based random numbers shared by Tensor (init, dropout) and Sampling (batches).
        .target(name: "CounterRandom", path: "Sources/CounterRandom"),
        .target(name: "Tensor", dependencies: ["CBLAS", "CKernels", "CounterRandom"], path: "Sources/Tensor"),
        .target(name: "Data", dependencies: ["CNIfTI"], path: "Sources/Data"),
        .target(name: "Sampling", dependencies: ["CounterRandom"], path: "Sources/Sampling"),
        .target(name: "Metrics", path: "Sources/Metrics"),
        .target(name: "DataParallel", dependencies: ["MPIShim"], path: "Sources/DataParallel"),
        .target(name: "Refine", dependencies: ["Data"], path: "Sources/Refine"),
        .target(name: "Train", dependencies: ["Tensor", "Data", "Sampling", "Metrics", "DataParallel"], path: "Sources/Train"),
        .executableTarget(name: "episodic", dependencies: ["Train", "Tensor", "Data", "Sampling", "Metrics", "DataParallel", "Refine"], path: "Sources/episodic"),
        // Test support only: glibc's heap-in-use count for the steady-state memory test.
        .target(name: "CHeapProbe", path: "Tests/CHeapProbe"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "CHeapProbe"], path: "Tests/TensorTests", resources: [.copy("Fixtures")]),
        .testTarget(name: "DataTests", dependencies: ["Data"], path: "Tests/DataTests", resources: [.copy("Fixtures")]),
        .testTarget(name: "SamplingTests", dependencies: ["Sampling"], path: "Tests/SamplingTests"),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics"], path: "Tests/MetricsTests", resources: [.copy("Fixtures")]),
        .testTarget(name: "DataParallelTests", dependencies: ["DataParallel"], path: "Tests/DataParallelTests"),
        .testTarget(name: "RefineTests", dependencies: ["Refine"], path: "Tests/RefineTests"),
        .testTarget(name: "TrainTests", dependencies: ["Train", "episodic"], path: "Tests/TrainTests"),
    ]
)
