package extauthz

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// viaProtojson is the reference rendering of any message.
func viaProtojson(m proto.Message) (ast.Value, error) {
	bs, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := util.UnmarshalJSON(bs, &doc); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(doc)
}

// TestProtoValueWellKnown holds protoValue to protojson on the well-known
// types it renders itself, including the ones no AttributeContext holds
// (float32 wrappers, durations), at their edges.
func TestProtoValueWellKnown(t *testing.T) {
	msgs := []proto.Message{
		&emptypb.Empty{},
		wrapperspb.Bool(true), wrapperspb.Bool(false),
		wrapperspb.Int32(math.MinInt32), wrapperspb.UInt32(math.MaxUint32),
		wrapperspb.Int64(math.MinInt64), wrapperspb.UInt64(math.MaxUint64),
		wrapperspb.String("é\x00\u2028"), wrapperspb.Bytes([]byte{0, 0xff, 0xfe}), wrapperspb.Bytes(nil),
		structpb.NewNullValue(), structpb.NewListValue(&structpb.ListValue{}),
		&structpb.Struct{}, &structpb.ListValue{Values: []*structpb.Value{structpb.NewBoolValue(true)}},
		&fieldmaskpb.FieldMask{Paths: []string{"a.b"}}, // declined: protojson renders it
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e-6, 9.999999e-7, 1e-7, 1e20, 1e21, 123456789.125,
		math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1), float64(math.MaxFloat32), 1e-45, 3.4e38} {
		msgs = append(msgs, wrapperspb.Double(f), wrapperspb.Float(float32(f)), structpb.NewNumberValue(f))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		msgs = append(msgs,
			wrapperspb.Double(math.Float64frombits(r.Uint64())),
			wrapperspb.Float(math.Float32frombits(r.Uint32())),
			&durationpb.Duration{Seconds: r.Int64N(630000000000) - 315000000000, Nanos: int32(r.IntN(2e9) - 1e9)},
			durationpb.New(time.Duration(r.Int64())),
			&durationpb.Duration{Nanos: int32(r.IntN(2e9) - 1e9)},
			&timestamppb.Timestamp{Seconds: r.Int64N(253402300800+62135596800) - 62135596800, Nanos: int32(r.IntN(1e9))},
			&timestamppb.Timestamp{Seconds: r.Int64N(1e10), Nanos: int32(r.IntN(1000) * 1e6)},
		)
	}
	for _, d := range []*durationpb.Duration{
		{Seconds: 315576000000, Nanos: 999999999}, {Seconds: -315576000000, Nanos: -999999999},
		{Seconds: 315576000001}, {Seconds: 1, Nanos: -1}, {Seconds: -1, Nanos: 1}, {Nanos: 1e9}, {Nanos: -1e9},
	} {
		msgs = append(msgs, d)
	}
	for i, m := range msgs {
		want, wantErr := viaProtojson(m)
		got, gotErr := protoValue(m.ProtoReflect())
		switch {
		case gotErr != nil && !errors.Is(gotErr, errNeedsProtojson):
			t.Errorf("%d %T %v: protoValue error %v", i, m, m, gotErr)
		case gotErr != nil:
			// Declined: protojson decides (renders or refuses).
			if needsProtojson(m.ProtoReflect()) != true {
				t.Errorf("%d %T %v: protoValue declined but needsProtojson is false", i, m, m)
			}
		case wantErr != nil:
			t.Errorf("%d %T %v: protoValue rendered %v, protojson refuses: %v", i, m, m, got, wantErr)
		case !sameText(got, want):
			t.Errorf("%d %T %v: protoValue %v, protojson %v", i, m, m, got, want)
		}
	}
}

// recursiveTypes builds, under a fresh package name, two message types that
// refer to each other, one of which holds a Timestamp:
//
//	message Outer { Inner inner = 1; google.protobuf.Timestamp time = 2; }
//	message Inner { Outer outer = 1; }
func recursiveTypes(t testing.TB, pkg string) (outer, inner protoreflect.MessageDescriptor) {
	t.Helper()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String(pkg + ".proto"),
		Package:    proto.String(pkg),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Outer"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("inner"), JsonName: proto.String("inner"), Number: proto.Int32(1), Label: opt, Type: msg, TypeName: proto.String("." + pkg + ".Inner")},
				{Name: proto.String("time"), JsonName: proto.String("time"), Number: proto.Int32(2), Label: opt, Type: msg, TypeName: proto.String(".google.protobuf.Timestamp")},
			}},
			{Name: proto.String("Inner"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("outer"), JsonName: proto.String("outer"), Number: proto.Int32(1), Label: opt, Type: msg, TypeName: proto.String("." + pkg + ".Outer")},
			}},
		},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("Outer"), fd.Messages().ByName("Inner")
}

// badNested is Outer{inner: {outer: {time: <out of range>}}}: protoValue
// declines it, so needsProtojson must say so.
func badNested(outerMD, innerMD protoreflect.MessageDescriptor) protoreflect.Message {
	deep := dynamicpb.NewMessage(outerMD)
	deep.Set(outerMD.Fields().ByName("time"), protoreflect.ValueOfMessage((&timestamppb.Timestamp{Seconds: math.MaxInt64}).ProtoReflect()))
	mid := dynamicpb.NewMessage(innerMD)
	mid.Set(innerMD.Fields().ByName("outer"), protoreflect.ValueOfMessage(deep))
	top := dynamicpb.NewMessage(outerMD)
	top.Set(outerMD.Fields().ByName("inner"), protoreflect.ValueOfMessage(mid))
	return top
}

// TestNeedsProtojsonRecursiveTypes: whether a type can hold a value
// protoValue declines does not depend on which type was asked about first.
func TestNeedsProtojsonRecursiveTypes(t *testing.T) {
	outerMD, innerMD := recursiveTypes(t, "gavel.test.recursive")
	// Ask about Outer through a message that holds one, first: working out
	// Outer visits Inner while Outer is still being worked out.
	probe := dynamicpb.NewMessage(innerMD)
	probe.Set(innerMD.Fields().ByName("outer"), protoreflect.ValueOfMessage(dynamicpb.NewMessage(outerMD)))
	if needsProtojson(probe) {
		t.Fatal("needsProtojson of an empty message is true")
	}
	m := badNested(outerMD, innerMD)
	if _, err := protoValue(m); !errors.Is(err, errNeedsProtojson) {
		t.Fatalf("protoValue err = %v, want errNeedsProtojson", err)
	}
	if !needsProtojson(m) {
		t.Error("needsProtojson = false for a message protoValue declines (Inner was cached as unable to hold a Timestamp)")
	}
}

// TestNeedsProtojsonConcurrentFirstUse: goroutines asking about types no
// one has asked about before all get the right answer.
func TestNeedsProtojsonConcurrentFirstUse(t *testing.T) {
	for i := range 50 {
		outerMD, innerMD := recursiveTypes(t, fmt.Sprintf("gavel.test.concurrent%d", i))
		m := badNested(outerMD, innerMD)
		var wg sync.WaitGroup
		start := make(chan struct{})
		wrong := make(chan bool, 4)
		for range 4 {
			wg.Go(func() {
				<-start
				if !needsProtojson(m) {
					wrong <- true
				}
			})
		}
		close(start)
		wg.Wait()
		close(wrong)
		if <-wrong {
			t.Fatalf("round %d: needsProtojson = false on first concurrent use", i)
		}
	}
}

// TestInvalidUTF8 pins where gavel parts from protojson: a string field
// that is not UTF-8 cannot come from Envoy (the gRPC decoder refuses it),
// but the HTTP endpoint can build one from a header's obs-text bytes.
// protojson refuses to render it (OPA-Envoy would answer 400); the direct
// rendering keeps the bytes, and the document stays consistent.
func TestInvalidUTF8(t *testing.T) {
	req := httpRequest("GET", "/api/v1/orders", map[string]string{"x-latin1": "caf\xe9"}, "")
	if _, err := protojson.Marshal(req.Attributes); err == nil {
		t.Fatal("protojson renders invalid UTF-8 now: needsProtojson and this test need a look")
	}
	if needsProtojson(req.Attributes.ProtoReflect()) {
		t.Error("needsProtojson = true")
	}
	in, err := BuildInput(req, InputOptions{})
	if err != nil {
		t.Fatalf("BuildInput: %v", err)
	}
	full, err := in.Value()
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := in.Find(ast.MustParseRef(`input.attributes.request.http.headers["x-latin1"]`)[1:])
	if ast.Compare(got, ast.String("caf\xe9")) != 0 {
		t.Errorf("header = %v", got)
	}
	checkFindAgrees(t, in, full, nil)
}
