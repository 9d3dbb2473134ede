package bronze

import (
	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go/format"
)

// fastSnappy is Parquet's SNAPPY codec with klauspost's default snappy
// encoder. parquet-go's own snappy codec uses the "better" encoder, which
// took a third of the sink's Parquet time for files a few percent smaller
// (BENCHMARKS.md). The output is standard snappy: every reader decodes it.
type fastSnappy struct{}

func (fastSnappy) String() string { return "SNAPPY" }

func (fastSnappy) CompressionCodec() format.CompressionCodec { return format.Snappy }

func (fastSnappy) Encode(dst, src []byte) ([]byte, error) { return s2.EncodeSnappy(dst, src), nil }

func (fastSnappy) Decode(dst, src []byte) ([]byte, error) { return s2.Decode(dst, src) }
