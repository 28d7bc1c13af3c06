# kpipe: one static binary, `kpipe manager` (the operator) and `kpipe run` (pipeline pods).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY main.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/
COPY runtime/ runtime/
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w" -o /out/kpipe .

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/kpipe /kpipe
USER 65532:65532
ENTRYPOINT ["/kpipe"]
CMD ["manager"]
