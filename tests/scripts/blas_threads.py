"""Each worker rank's BLAS pools (numpy's and scipy's OpenBLAS) use as many threads as it has slots."""
import dagmpi
def blas():
    from threadpoolctl import threadpool_info
    import scipy.linalg.blas  # noqa: F401  (loads scipy's OpenBLAS)
    return sorted({(i["internal_api"], i["num_threads"]) for i in threadpool_info()})
print([dagmpi.fetch(dagmpi.spawn(blas, options=dagmpi.Options(scope=dagmpi.scope(rank=r)))) for r in dagmpi.workers()])
