/* kd_cmd_index.c — (being written) */
#include "kd.h"

void kd_register_index(void)
{
}
