#ifndef SWIFT_WORKFLOW_EVENTS_CRDKAFKA_SHIM_H
#define SWIFT_WORKFLOW_EVENTS_CRDKAFKA_SHIM_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/// rd_kafka_producev is variadic, which Swift cannot call: this fixed-arity wrapper
/// produces one message with an optional key, optional value and optional headers
/// (ownership of `headers` passes to librdkafka on success only).
static inline rd_kafka_resp_err_t
swe_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
            const void *value, size_t value_len,
            const void *key, size_t key_len,
            rd_kafka_headers_t *headers, void *msg_opaque) {
    if (headers) {
        return rd_kafka_producev(rk,
                                 RD_KAFKA_V_TOPIC(topic),
                                 RD_KAFKA_V_PARTITION(partition),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_VALUE((void *)value, value_len),
                                 RD_KAFKA_V_KEY(key, key_len),
                                 RD_KAFKA_V_HEADERS(headers),
                                 RD_KAFKA_V_OPAQUE(msg_opaque),
                                 RD_KAFKA_V_END);
    }
    return rd_kafka_producev(rk,
                             RD_KAFKA_V_TOPIC(topic),
                             RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_KEY(key, key_len),
                             RD_KAFKA_V_OPAQUE(msg_opaque),
                             RD_KAFKA_V_END);
}

#endif
