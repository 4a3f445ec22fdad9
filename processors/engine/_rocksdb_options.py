"""The RocksDB options of every disk store (`_disk_store.py`): bloom filters, one block
cache and one memtable budget per process, LZ4. What each is for and what it measured:
docs/state.md ("RocksDB options"). Private to the engine."""

from __future__ import annotations

import rocksdict

__all__ = ["rocksdb_options"]

_cache: rocksdict.Cache | None = None
_buffers: rocksdict.WriteBufferManager | None = None


def rocksdb_options() -> rocksdict.Options:
    global _cache, _buffers  # one block cache and one memtable budget per process
    if _cache is None or _buffers is None:
        _cache = rocksdict.Cache(32 * 1024 * 1024)
        _buffers = rocksdict.WriteBufferManager(64 * 1024 * 1024, False)
    table = rocksdict.BlockBasedOptions()
    table.set_bloom_filter(10, False)
    table.set_block_cache(_cache)
    opts = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_block_based_table_factory(table)
    opts.set_max_background_jobs(2)
    opts.set_write_buffer_size(16 * 1024 * 1024)
    opts.set_write_buffer_manager(_buffers)
    opts.set_memtable_whole_key_filtering(True)  # a bloom filter in the memtables too
    opts.set_memtable_prefix_bloom_ratio(0.1)
    opts.set_max_write_buffer_number(3)
    opts.set_compression_type(rocksdict.DBCompressionType.lz4())
    opts.set_keep_log_file_num(2)
    opts.set_max_log_file_size(1024 * 1024)
    return opts
