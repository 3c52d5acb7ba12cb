/* SPDX-License-Identifier: Apache-2.0 */
/* fam_c.h — OpenFAM's C API (the c_fam_* functions) on top of libfam.
 *
 * Programs written for OpenFAM's C interface compile against this header
 * and link with -lfam unchanged. Types, enumerators and prototypes follow
 * OpenFAM's C API; the behaviour is libfam's:
 *   - memory servers come from $FAM_SERVERS (host:port,...), the provider
 *     from Fam_Options.libfabricProvider, else $FAM_PROVIDER, else chosen
 *     per server (shm for one on this host, tcp for the others: fam.h);
 *   - int functions return 0 or -1, pointer functions a pointer or NULL;
 *     after a failure c_fam_error() gives a Fam_Error number and
 *     c_fam_error_msg() a message (both per thread, kept until the next
 *     failure);
 *   - handles (c_fam, c_fam_context, descriptors) are void pointers, and a
 *     context may be passed wherever a c_fam is expected.
 * Not available here: c_fam_map/c_fam_unmap (the memory-server model has no
 * load/store mapping), which fail with FAM_ERR_UNIMPL. */
#ifndef FAM_C_H_
#define FAM_C_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifndef int128_t
#if defined(__SIZEOF_INT128__)
typedef __int128 int128_t;
#else
typedef long long int128_t;
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { INTERLEAVE_DEFAULT = 0, ENABLE, DISABLE } Fam_Interleave_Enable;
typedef enum { MEMORY_TYPE_DEFAULT = 0, VOLATILE, PERSISTENT } Fam_Memory_Type;
typedef enum { REDUNDANCY_LEVEL_DEFAULT = 0, NONE, RAID1, RAID5 } Fam_Redundancy_Level;
typedef enum { PERMISSION_LEVEL_DEFAULT = 0, REGION, DATAITEM } Fam_Permission_Level;
typedef enum {
    ALLOCATION_POLICY_DEFAULT = 0,
    SINGLE_NODE_SINGLE_ALLOC,
    MULTI_NODE_MULTI_ALLOC
} Fam_Allocation_Policy;

/* Options for c_fam_initialize; zero (NULL) fields take defaults. Only
 * libfabricProvider and fam_default_memory_type change what libfam does;
 * the others are accepted and reported by c_fam_get_option. */
typedef struct {
    char *defaultRegionName;
    char *cisServer;
    char *grpcPort;
    char *libfabricProvider;   /* "shm", "tcp" (or "sockets") */
    char *famThreadModel;
    char *cisInterfaceType;
    char *openFamModel;
    char *famContextModel;
    char *numConsumer;
    char *runtime;
    char *fam_default_memory_type; /* "volatile" or "persistent" */
    char *if_device;
    void *local_buf_addr;
    uint64_t local_buf_size;
} Fam_Options;

typedef struct {
    Fam_Redundancy_Level redundancyLevel;
    Fam_Memory_Type memoryType;
    Fam_Interleave_Enable interleaveEnable;
    Fam_Permission_Level permissionLevel;
    Fam_Allocation_Policy allocationPolicy;
    int hostingNode;
} Fam_Region_Attributes;

typedef struct {
    uint64_t size;
    mode_t perm;
    char *name; /* owned by the library; valid while the descriptor is */
    uint32_t uid;
    uint32_t gid;
    Fam_Region_Attributes region_attributes;
    uint64_t num_memservers;
    uint64_t interleaveSize;
    uint64_t memory_servers[256];
} Fam_Stat;

typedef struct {
    uint32_t backup_option_reserved;
} Fam_Backup_Options;

/* The numbers c_fam_error() returns (OpenFAM's Fam_Error). */
typedef enum {
    FAM_NO_ERROR = 0,
    FAM_ERR_UNKNOWN,
    FAM_ERR_NOPERM,
    FAM_ERR_TIMEOUT,
    FAM_ERR_INVALID,
    FAM_ERR_LIBFABRIC,
    FAM_ERR_SHM,
    FAM_ERR_NOT_CREATED,
    FAM_ERR_NOTFOUND,
    FAM_ERR_ALREADYEXIST,
    FAM_ERR_ALLOCATOR,
    FAM_ERR_RPC,
    FAM_ERR_PMI,
    FAM_ERR_OUTOFRANGE,
    FAM_ERR_NO_SPACE,
    FAM_ERR_NULLPTR,
    FAM_ERR_UNIMPL,
    FAM_ERR_RESOURCE,
    FAM_ERR_INVALIDOP,
    FAM_ERR_RPC_CLIENT_NOTFOUND,
    FAM_ERR_MEMSERV_LIST_EMPTY,
    FAM_ERR_METADATA,
    FAM_ERR_MEMORY,
    FAM_ERR_NAME_TOO_LONG,
    FAM_ERR_ATL_QUEUE_FULL,
    FAM_ERR_ATL_QUEUE_INSERT,
    FAM_ERR_ATL_NOT_ENABLED,
    FAM_ERR_ATL,
    FAM_BACKUP_NOT_CREATED,
    FAM_BACKUP_NOTFOUND,
    FAM_BACKUP_INFO_NOTFOUND,
    FAM_ERR_NOT_PWR_TWO
} Fam_Error;

typedef void c_fam;
typedef void c_fam_region_desc;
typedef void c_fam_desc;
typedef void c_fam_context;
typedef Fam_Options c_fam_options;
typedef Fam_Interleave_Enable c_fam_Interleave_Enable;
typedef Fam_Memory_Type c_fam_Memory_Type;
typedef Fam_Redundancy_Level c_fam_Redundancy_Level;
typedef Fam_Region_Attributes c_fam_Region_Attributes;
typedef Fam_Stat c_fam_stat;
typedef Fam_Backup_Options c_fam_backup_options;

/* set-up */
c_fam *c_fam_create(void);
int c_fam_initialize(c_fam *fam_obj, const char *group_name, c_fam_options *fam_opts);
int c_fam_finalize(c_fam *fam_obj, const char *group_name);
void c_fam_delete(c_fam *fam_obj);
int c_fam_abort(c_fam *fam_obj, int status);
const char **c_fam_list_options(c_fam *fam_obj);
const void *c_fam_get_option(c_fam *fam_obj, const char *option_name);
int c_fam_error(void);
const char *c_fam_error_msg(void);
c_fam_context *c_fam_context_open(c_fam *fam_obj);
int c_fam_context_close(c_fam *fam_obj, c_fam_context *fam_cntxt);

/* regions */
c_fam_region_desc *c_fam_create_region(c_fam *fam_obj, const char *region_name,
                                       size_t size, mode_t perm,
                                       c_fam_Region_Attributes *reg_att);
c_fam_region_desc *c_fam_lookup_region(c_fam *fam_obj, const char *name);
int c_fam_destroy_region(c_fam *fam_obj, c_fam_region_desc *region_desc);
int c_fam_resize_region(c_fam *fam_obj, c_fam_region_desc *region_desc, uint64_t size);
int c_fam_change_permissions_region(c_fam *fam_obj, c_fam_region_desc *region_desc,
                                    mode_t perm);
int c_fam_stat_region(c_fam *fam_obj, c_fam_region_desc *region_desc, c_fam_stat *stat);

/* data items */
c_fam_desc *c_fam_allocate(c_fam *fam_obj, size_t size, mode_t perm,
                           c_fam_region_desc *region_desc);
c_fam_desc *c_fam_allocate_named(c_fam *fam_obj, const char *name, size_t size,
                                 mode_t perm, c_fam_region_desc *region_desc);
c_fam_desc *c_fam_lookup(c_fam *fam_obj, const char *name, const char *region_name);
int c_fam_deallocate(c_fam *fam_obj, c_fam_desc *desc);
int c_fam_close(c_fam *fam_obj, c_fam_desc *desc);
int c_fam_change_permissions_data(c_fam *fam_obj, c_fam_desc *desc, mode_t perm);
int c_fam_stat_data(c_fam *fam_obj, c_fam_desc *desc, c_fam_stat *stat);

/* put and get */
int c_fam_put_nonblocking(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                          uint64_t offset, size_t size);
int c_fam_get_nonblocking(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                          uint64_t offset, size_t size);
int c_fam_put_blocking(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                       uint64_t offset, size_t size);
int c_fam_get_blocking(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                       uint64_t offset, size_t size);

/* gather and scatter (element indices, stride in elements) */
int c_fam_gather_blocking_stride(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                                 uint64_t n_elements, uint64_t first_element,
                                 uint64_t stride, uint64_t element_size);
int c_fam_gather_nonblocking_stride(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                                    uint64_t n_elements, uint64_t first_element,
                                    uint64_t stride, uint64_t element_size);
int c_fam_gather_blocking_index(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                                uint64_t n_elements, uint64_t *element_index,
                                uint64_t element_size);
int c_fam_gather_nonblocking_index(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                                   uint64_t n_elements, uint64_t *element_index,
                                   uint64_t element_size);
int c_fam_scatter_blocking_stride(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                                  uint64_t n_elements, uint64_t first_element,
                                  uint64_t stride, uint64_t element_size);
int c_fam_scatter_nonblocking_stride(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                                     uint64_t n_elements, uint64_t first_element,
                                     uint64_t stride, uint64_t element_size);
int c_fam_scatter_blocking_index(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                                 uint64_t n_elements, uint64_t *element_index,
                                 uint64_t element_size);
int c_fam_scatter_nonblocking_index(c_fam *fam_obj, void *local_addr, c_fam_desc *desc,
                                    uint64_t n_elements, uint64_t *element_index,
                                    uint64_t element_size);

/* map (not available in the memory-server model) */
void *c_fam_map(c_fam *fam_obj, c_fam_desc *desc);
int c_fam_unmap(c_fam *fam_obj, void *local_ptr, c_fam_desc *desc);

/* copy, backup, restore */
void *c_fam_copy(c_fam *fam_obj, c_fam_desc *src_desc, uint64_t src_offset,
                 c_fam_desc *dest_desc, uint64_t dest_offset, size_t size);
int c_fam_copy_wait(c_fam *fam_obj, void *wait_obj);
void *c_fam_backup(c_fam *fam_obj, c_fam_desc *src_desc, const char *backup_name,
                   c_fam_backup_options *backup_options);
int c_fam_backup_wait(c_fam *fam_obj, void *wait_obj);
void *c_fam_restore(c_fam *fam_obj, const char *backup_name, c_fam_desc *dest_desc);
void *c_fam_restore_region(c_fam *fam_obj, const char *backup_name,
                           c_fam_region_desc *dest_reg_desc, const char *dataitem_name,
                           mode_t perm, c_fam_desc **dest_desc);
int c_fam_restore_wait(c_fam *fam_obj, void *wait_obj);
void *c_fam_delete_backup(c_fam *fam_obj, const char *backup_name);
int c_fam_delete_backup_wait(c_fam *fam_obj, void *wait_obj);

/* ordering and progress */
int c_fam_quiet(c_fam *fam_obj);
int c_fam_fence(c_fam *fam_obj);
int c_fam_progress(c_fam *fam_obj, uint64_t *value);

/* atomics */
#define C_FAM_ATOMIC_(N, T)                                                     \
    int c_fam_add_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, T value); \
    int c_fam_subtract_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, T value); \
    int c_fam_min_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, T value); \
    int c_fam_max_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, T value); \
    int c_fam_swap_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, T value, \
                       T *ret_val);                                            \
    int c_fam_fetch_add_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset,   \
                            T value, T *ret_val);                              \
    int c_fam_fetch_subtract_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, \
                                 T value, T *ret_val);                         \
    int c_fam_fetch_min_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset,   \
                            T value, T *ret_val);                              \
    int c_fam_fetch_max_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset,   \
                            T value, T *ret_val);
#define C_FAM_SET_FETCH_(N, T)                                                  \
    int c_fam_set_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, T value); \
    int c_fam_fetch_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, T *value);
#define C_FAM_CSWAP_(N, T)                                                      \
    int c_fam_compare_swap_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, \
                               T old_val, T new_val, T *ret_val);
#define C_FAM_BITS_(N, T)                                                       \
    int c_fam_and_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, T value); \
    int c_fam_or_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, T value); \
    int c_fam_xor_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset, T value); \
    int c_fam_fetch_and_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset,   \
                            T value, T *ret_val);                              \
    int c_fam_fetch_or_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset,    \
                           T value, T *ret_val);                               \
    int c_fam_fetch_xor_##N(c_fam *fam_obj, c_fam_desc *desc, uint64_t offset,   \
                            T value, T *ret_val);

C_FAM_SET_FETCH_(int32, int32_t)
C_FAM_SET_FETCH_(int64, int64_t)
C_FAM_SET_FETCH_(uint32, uint32_t)
C_FAM_SET_FETCH_(uint64, uint64_t)
C_FAM_SET_FETCH_(float, float)
C_FAM_SET_FETCH_(double, double)
C_FAM_SET_FETCH_(int128, int128_t)
C_FAM_ATOMIC_(int32, int32_t)
C_FAM_ATOMIC_(int64, int64_t)
C_FAM_ATOMIC_(uint32, uint32_t)
C_FAM_ATOMIC_(uint64, uint64_t)
C_FAM_ATOMIC_(float, float)
C_FAM_ATOMIC_(double, double)
C_FAM_CSWAP_(int32, int32_t)
C_FAM_CSWAP_(int64, int64_t)
C_FAM_CSWAP_(uint32, uint32_t)
C_FAM_CSWAP_(uint64, uint64_t)
C_FAM_CSWAP_(int128, int128_t)
C_FAM_BITS_(uint32, uint32_t)
C_FAM_BITS_(uint64, uint64_t)

#ifdef __cplusplus
}
#endif
#endif /* FAM_C_H_ */
