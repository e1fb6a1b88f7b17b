#include "cnifti.h"
#include <nifti1_io.h>
#include <stdio.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <stdlib.h>

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen > 0) snprintf(err, errlen, "%s", msg);
}

// nifticlib reports problems on stderr; Episodic builds its own messages, so its chatter is off.
static void quiet(void) { nifti_set_debug_level(0); }

static void copy_header(const nifti_image *nim, cnifti_header *h) {
    memset(h, 0, sizeof *h);
    h->ndim = nim->ndim;
    for (int i = 0; i < 8; i++) { h->dim[i] = nim->dim[i]; h->pixdim[i] = nim->pixdim[i]; }
    h->datatype = nim->datatype;
    h->nbyper = nim->nbyper;
    h->scl_slope = nim->scl_slope;
    h->scl_inter = nim->scl_inter;
    h->qform_code = nim->qform_code;
    h->sform_code = nim->sform_code;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            h->qform[r * 4 + c] = nim->qto_xyz.m[r][c];
            h->sform[r * 4 + c] = nim->sto_xyz.m[r][c];
        }
    h->quatern[0] = nim->quatern_b; h->quatern[1] = nim->quatern_c; h->quatern[2] = nim->quatern_d;
    h->quatern[3] = nim->qoffset_x; h->quatern[4] = nim->qoffset_y; h->quatern[5] = nim->qoffset_z;
    h->qfac = nim->qfac;
    h->xyz_units = nim->xyz_units;
    h->swapped = nim->byteorder != nifti_short_order();
    h->is_nifti = nim->nifti_type != NIFTI_FTYPE_ANALYZE;
}

static int file_readable(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) { set_err(err, errlen, "file does not exist"); return 0; }
    if (!S_ISREG(st.st_mode)) { set_err(err, errlen, "not a regular file"); return 0; }
    FILE *f = fopen(path, "rb");
    if (!f) { set_err(err, errlen, "file is not readable (permission denied?)"); return 0; }
    fclose(f);
    return 1;
}

int cnifti_read_header(const char *path, cnifti_header *out, char *err, size_t errlen) {
    quiet();
    if (!file_readable(path, err, errlen)) return -1;
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim) { set_err(err, errlen, "not a readable NIfTI header (corrupt, truncated or not NIfTI)"); return -1; }
    copy_header(nim, out);
    nifti_image_free(nim);
    return 0;
}

int cnifti_datatype_supported(int32_t dt) {
    switch (dt) {
    case NIFTI_TYPE_UINT8: case NIFTI_TYPE_INT8: case NIFTI_TYPE_INT16: case NIFTI_TYPE_UINT16:
    case NIFTI_TYPE_INT32: case NIFTI_TYPE_UINT32: case NIFTI_TYPE_INT64: case NIFTI_TYPE_UINT64:
    case NIFTI_TYPE_FLOAT32: case NIFTI_TYPE_FLOAT64:
        return 1;
    default:
        return 0;
    }
}

const char *cnifti_datatype_name(int32_t dt) { return nifti_datatype_string(dt); }

#define CONVERT(T) do { const T *src = (const T *)nim->data; \
    for (size_t i = 0; i < n; i++) out[i] = (float)src[i]; } while (0)

int cnifti_read_float(const char *path, float *out, size_t capacity, cnifti_header *hdr, char *err, size_t errlen) {
    quiet();
    if (!file_readable(path, err, errlen)) return -1;
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim) { set_err(err, errlen, "not a readable NIfTI header (corrupt, truncated or not NIfTI)"); return -1; }
    if (!cnifti_datatype_supported(nim->datatype)) {
        char msg[128];
        snprintf(msg, sizeof msg, "unsupported datatype %s (%d)", nifti_datatype_string(nim->datatype), nim->datatype);
        set_err(err, errlen, msg);
        nifti_image_free(nim);
        return -1;
    }
    if (nim->nvox != capacity) {
        set_err(err, errlen, "voxel count differs from the caller's buffer");
        nifti_image_free(nim);
        return -1;
    }
    // Read the raw bytes ourselves (after the checks, so an unsupported or oversized file never gets its data
    // allocated): nifticlib's loader silently replaces NaN/inf floats by 0, and we want to refuse those.
    size_t nbytes = nim->nvox * (size_t)nim->nbyper;
    void *raw = malloc(nbytes > 0 ? nbytes : 1);
    if (!raw) { set_err(err, errlen, "out of memory for the voxel data"); nifti_image_free(nim); return -1; }
    znzFile fp = znzopen(nim->iname, "rb", nifti_is_gzfile(nim->iname));
    if (znz_isnull(fp)) {
        set_err(err, errlen, "cannot open the voxel data file");
        free(raw); nifti_image_free(nim); return -1;
    }
    size_t got = 0;
    if (znzseek(fp, (long)nim->iname_offset, SEEK_SET) >= 0) got = znzread(raw, 1, nbytes, fp);
    znzclose(fp);
    if (got != nbytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "voxel data truncated or corrupt (read %zu of %zu bytes)", got, nbytes);
        set_err(err, errlen, msg);
        free(raw); nifti_image_free(nim); return -1;
    }
    if (nim->byteorder != nifti_short_order() && nim->nbyper > 1) nifti_swap_Nbytes(nim->nvox, nim->nbyper, raw);
    nim->data = raw;
    copy_header(nim, hdr);
    size_t n = nim->nvox;
    switch (nim->datatype) {
    case NIFTI_TYPE_UINT8: CONVERT(uint8_t); break;
    case NIFTI_TYPE_INT8: CONVERT(int8_t); break;
    case NIFTI_TYPE_INT16: CONVERT(int16_t); break;
    case NIFTI_TYPE_UINT16: CONVERT(uint16_t); break;
    case NIFTI_TYPE_INT32: CONVERT(int32_t); break;
    case NIFTI_TYPE_UINT32: CONVERT(uint32_t); break;
    case NIFTI_TYPE_INT64: CONVERT(int64_t); break;
    case NIFTI_TYPE_UINT64: CONVERT(uint64_t); break;
    case NIFTI_TYPE_FLOAT32: CONVERT(float); break;
    case NIFTI_TYPE_FLOAT64: CONVERT(double); break;
    }
    // NIfTI rule: scl_slope 0 (or not finite) means "no scaling".
    float s = nim->scl_slope, b = isfinite(nim->scl_inter) ? nim->scl_inter : 0.0f;
    if (isfinite(s) && s != 0.0f && !(s == 1.0f && b == 0.0f)) {
        for (size_t i = 0; i < n; i++) out[i] = out[i] * s + b;
    }
    nifti_image_free(nim);
    return 0;
}

int cnifti_write(const char *path, const int64_t dims[3], int32_t datatype, const void *data,
                 const float pixdim[3], int32_t qform_code, const double qform[16],
                 int32_t sform_code, const double sform[16], float scl_slope, float scl_inter,
                 char *err, size_t errlen) {
    quiet();
    int d[8] = {3, (int)dims[0], (int)dims[1], (int)dims[2], 1, 1, 1, 1};
    if (dims[0] <= 0 || dims[1] <= 0 || dims[2] <= 0) { set_err(err, errlen, "dimensions must be positive"); return -1; }
    if (datatype != NIFTI_TYPE_UINT8 && datatype != NIFTI_TYPE_INT16 && datatype != NIFTI_TYPE_INT32 &&
        datatype != NIFTI_TYPE_FLOAT32 && datatype != NIFTI_TYPE_FLOAT64) {
        set_err(err, errlen, "unsupported datatype for writing");
        return -1;
    }
    nifti_image *nim = nifti_make_new_nim(d, datatype, 0);
    if (!nim) { set_err(err, errlen, "could not create a NIfTI image"); return -1; }
    nim->dx = nim->pixdim[1] = pixdim[0];
    nim->dy = nim->pixdim[2] = pixdim[1];
    nim->dz = nim->pixdim[3] = pixdim[2];
    nim->xyz_units = NIFTI_UNITS_MM;
    nim->scl_slope = scl_slope;
    nim->scl_inter = scl_inter;
    nim->qform_code = qform_code;
    nim->sform_code = sform_code;
    if (qform_code > 0) {
        mat44 q;
        for (int r = 0; r < 4; r++) for (int c = 0; c < 4; c++) q.m[r][c] = (float)qform[r * 4 + c];
        float dx, dy, dz, qfac;
        nifti_mat44_to_quatern(q, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d,
                               &nim->qoffset_x, &nim->qoffset_y, &nim->qoffset_z, &dx, &dy, &dz, &qfac);
        nim->qfac = qfac;
        nim->pixdim[0] = qfac;
        nim->qto_xyz = q;
    }
    if (sform_code > 0) {
        for (int r = 0; r < 4; r++) for (int c = 0; c < 4; c++) nim->sto_xyz.m[r][c] = (float)sform[r * 4 + c];
    }
    if (nifti_set_filenames(nim, path, 0, 1) != 0) {
        set_err(err, errlen, "file name must end in .nii or .nii.gz");
        nifti_image_free(nim);
        return -1;
    }
    nim->data = (void *)data;  // borrowed; detached before free
    remove(path);
    nifti_image_write(nim);
    nim->data = NULL;
    nifti_image_free(nim);
    // nifti_image_write returns nothing: check that a complete header landed on disk.
    nifti_image *back = nifti_image_read(path, 0);
    if (!back) { set_err(err, errlen, "writing failed (disk full or directory not writable?)"); return -1; }
    nifti_image_free(back);
    return 0;
}
