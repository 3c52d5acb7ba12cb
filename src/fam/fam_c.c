/* fam_c.c — OpenFAM C API (c_fam_*) on top of libfam. */
