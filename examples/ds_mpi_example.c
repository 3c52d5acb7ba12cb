/* ds_mpi_example.c — placeholder; the MPI example follows in the next commit. */
int main(void) { return 0; }
