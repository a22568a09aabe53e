#!/usr/bin/env python3
"""An embedded Kafka cluster from the librdkafka that confluent-kafka's wheel carries (2.16),
for running the hand-over tests against a second broker implementation.

Prints `bootstrap <servers>` and then serves commands on stdin, one per line, each answered
with `ok` or `error <why>`:
    topic NAME PARTITIONS   create a topic (replication factor 1)
    rtt BROKER MS           delay each answer of a broker by MS milliseconds
    quit                    destroy the cluster and exit (so does the end of stdin)
"""
import ctypes
import glob
import os
import sys

import confluent_kafka

libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(confluent_kafka.__file__)), "confluent_kafka.libs", "librdkafka*.so*"))
if not libs:
    sys.exit("confluent-kafka's bundled librdkafka was not found")
rd = ctypes.CDLL(libs[0])
rd.rd_kafka_version_str.restype = ctypes.c_char_p
rd.rd_kafka_conf_new.restype = ctypes.c_void_p
rd.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
rd.rd_kafka_new.restype = ctypes.c_void_p
rd.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
rd.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
rd.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
rd.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
rd.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
rd.rd_kafka_mock_topic_create.restype = ctypes.c_int
rd.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
rd.rd_kafka_mock_broker_set_rtt.restype = ctypes.c_int
rd.rd_kafka_mock_broker_set_rtt.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int]
rd.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
rd.rd_kafka_destroy.argtypes = [ctypes.c_void_p]

errstr = ctypes.create_string_buffer(512)
conf = rd.rd_kafka_conf_new()
rd.rd_kafka_conf_set(conf, b"log_level", b"0", errstr, 512)
handle = rd.rd_kafka_new(1, conf, errstr, 512)  # RD_KAFKA_PRODUCER
if not handle:
    sys.exit("librdkafka could not create a handle: " + errstr.value.decode())
cluster = rd.rd_kafka_mock_cluster_new(handle, int(os.environ.get("MOCK_BROKERS", "1")))
if not cluster:
    sys.exit("librdkafka could not create a mock cluster")
print("version", rd.rd_kafka_version_str().decode(), flush=True)
print("bootstrap", rd.rd_kafka_mock_cluster_bootstraps(cluster).decode(), flush=True)
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "quit":
        break
    if words[0] == "topic" and len(words) == 3:
        err = rd.rd_kafka_mock_topic_create(cluster, words[1].encode(), int(words[2]), 1)
        print("ok" if err == 0 else f"error {err}", flush=True)
    elif words[0] == "rtt" and len(words) == 3:
        err = rd.rd_kafka_mock_broker_set_rtt(cluster, int(words[1]), int(words[2]))
        print("ok" if err == 0 else f"error {err}", flush=True)
    else:
        print("error unknown command", flush=True)
rd.rd_kafka_mock_cluster_destroy(cluster)
rd.rd_kafka_destroy(handle)
