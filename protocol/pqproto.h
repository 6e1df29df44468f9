/* protocol/pqproto.h: PostgreSQL v3 protocol constants, named as in PostgreSQL's libpq/protocol.h.
 */
#pragma once

/* Frontend (client -> server) message types. */
#define PqMsg_Bind                'B'
#define PqMsg_Close               'C'
#define PqMsg_Describe            'D'
#define PqMsg_Execute             'E'
#define PqMsg_FunctionCall        'F'
#define PqMsg_Flush               'H'
#define PqMsg_Parse               'P'
#define PqMsg_Query               'Q'
#define PqMsg_Sync                'S'
#define PqMsg_Terminate           'X'
#define PqMsg_CopyFail            'f'
#define PqMsg_GSSResponse         'p'
#define PqMsg_PasswordMessage     'p'
#define PqMsg_SASLInitialResponse 'p'
#define PqMsg_SASLResponse        'p'

/* Backend (server -> client) message types. */
#define PqMsg_ParseComplete            '1'
#define PqMsg_BindComplete             '2'
#define PqMsg_CloseComplete            '3'
#define PqMsg_NotificationResponse     'A'
#define PqMsg_CommandComplete          'C'
#define PqMsg_DataRow                  'D'
#define PqMsg_ErrorResponse            'E'
#define PqMsg_CopyInResponse           'G'
#define PqMsg_CopyOutResponse          'H'
#define PqMsg_EmptyQueryResponse       'I'
#define PqMsg_BackendKeyData           'K'
#define PqMsg_NoticeResponse           'N'
#define PqMsg_AuthenticationRequest    'R'
#define PqMsg_ParameterStatus          'S'
#define PqMsg_RowDescription           'T'
#define PqMsg_FunctionCallResponse     'V'
#define PqMsg_CopyBothResponse         'W'
#define PqMsg_ReadyForQuery            'Z'
#define PqMsg_NoData                   'n'
#define PqMsg_PortalSuspended          's'
#define PqMsg_ParameterDescription     't'
#define PqMsg_NegotiateProtocolVersion 'v'

/* Shared by both directions. */
#define PqMsg_CopyData 'd'
#define PqMsg_CopyDone 'c'

/* Authentication request codes (the Int32 after 'R'). */
#define AUTH_REQ_OK        0
#define AUTH_REQ_PASSWORD  3
#define AUTH_REQ_MD5       5
#define AUTH_REQ_SASL      10
#define AUTH_REQ_SASL_CONT 11
#define AUTH_REQ_SASL_FIN  12

/* Untyped startup-phase packets: the Int32 "protocol version" field. */
#define PG_PROTOCOL(m, n)   (((m) << 16) | (n))
#define PG_PROTOCOL_V3      PG_PROTOCOL(3, 0)
#define CANCEL_REQUEST_CODE PG_PROTOCOL(1234, 5678)
#define NEGOTIATE_SSL_CODE  PG_PROTOCOL(1234, 5679)
#define NEGOTIATE_GSS_CODE  PG_PROTOCOL(1234, 5680)

/* ReadyForQuery transaction status bytes. */
#define PQ_TXN_IDLE   'I'
#define PQ_TXN_BLOCK  'T'
#define PQ_TXN_FAILED 'E'

/* Bounds: a startup packet is at most this long (PostgreSQL's MAX_STARTUP_PACKET_LENGTH). */
#define PQ_MAX_STARTUP_PACKET 10000
