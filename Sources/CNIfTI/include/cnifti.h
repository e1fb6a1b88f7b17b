#ifndef EPISODIC_CNIFTI_H
#define EPISODIC_CNIFTI_H
// A small shim over nifticlib (NIfTI-1). This header includes only standard C headers so that Swift can import it
// without nifticlib's include path; the .c file is the only place that sees <nifti1_io.h>.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The header fields Episodic needs, copied out of a nifti_image.
typedef struct {
    int32_t ndim;            // number of dimensions (dim[0])
    int64_t dim[8];          // dim[1..7]; dim[0] = ndim
    float pixdim[8];         // pixdim[1..3] = voxel size; pixdim[0] = qfac
    int32_t datatype;        // NIFTI_TYPE_* code
    int32_t nbyper;          // bytes per voxel
    float scl_slope;
    float scl_inter;
    int32_t qform_code;
    int32_t sform_code;
    double qform[16];        // row-major 4x4 voxel->world matrix from the quaternion (pixdim diagonal if qform_code 0)
    double sform[16];        // row-major 4x4 sform matrix (valid when sform_code > 0)
    float quatern[6];        // quatern_b, c, d, qoffset_x, y, z (as stored)
    float qfac;
    int32_t xyz_units;       // NIFTI_UNITS_* of the spatial axes
    int32_t swapped;         // 1 when the file is in the other byte order
    int32_t is_nifti;        // 1 for NIfTI-1 (single or pair), 0 for ANALYZE-7.5
} cnifti_header;

/// Reads only the header of `path` (.nii, .nii.gz, .hdr). Returns 0 on success; otherwise a message in `err`.
int cnifti_read_header(const char *path, cnifti_header *out, char *err, size_t errlen);

/// Reads header and data, converts the voxels to float and applies scl_slope/scl_inter (when slope is finite and
/// nonzero). `out` must hold `capacity` floats; the voxel count must equal `capacity`. Returns 0 on success.
/// Supported datatypes: uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64.
int cnifti_read_float(const char *path, float *out, size_t capacity, cnifti_header *hdr, char *err, size_t errlen);

/// True when `datatype` is one cnifti_read_float can convert.
int cnifti_datatype_supported(int32_t datatype);

/// Name of a NIFTI_TYPE_* code ("INT16", ...), static storage.
const char *cnifti_datatype_name(int32_t datatype);

/// Writes a 3D volume. `data` holds nx*ny*nz voxels of `datatype` (NIFTI_TYPE_UINT8 = 2, INT16 = 4, FLOAT32 = 16),
/// x fastest. Geometry: `pixdim` (3 voxel sizes), `qform` (row-major 4x4, written as quaternion when qform_code > 0),
/// `sform` (row-major 4x4, written when sform_code > 0). The file type follows the name (.nii or .nii.gz).
/// Returns 0 on success.
int cnifti_write(const char *path, const int64_t dims[3], int32_t datatype, const void *data,
                 const float pixdim[3], int32_t qform_code, const double qform[16],
                 int32_t sform_code, const double sform[16], float scl_slope, float scl_inter,
                 char *err, size_t errlen);

#define CNIFTI_TYPE_UINT8 2
#define CNIFTI_TYPE_INT16 4
#define CNIFTI_TYPE_INT32 8
#define CNIFTI_TYPE_FLOAT32 16
#define CNIFTI_TYPE_FLOAT64 64

#ifdef __cplusplus
}
#endif
#endif
