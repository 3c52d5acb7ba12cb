/* kd_cmd_sort.c — (being written) */
#include "kd.h"

void kd_register_sort(void)
{
}
