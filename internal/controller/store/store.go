// Package store opens the etcd keyspace that bagpipe-controller keeps all its
// state in: either an embedded single-member etcd server with a data
// directory (the default, nothing to set up) or an external etcd cluster
// shared by several controllers. Both cases hand back the same
// *clientv3.Client, so the controller has one code path (transactions,
// revisions and watches) whatever the deployment.
//
// Durability: the embedded server keeps etcd's defaults (WAL fsync before a
// write is acknowledged), so a controller killed at any moment loses no
// acknowledged write and restarts with all its state from the data directory.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// Config says where the state lives.
type Config struct {
	// Endpoints are the client URLs of an external etcd cluster
	// (e.g. "http://10.0.0.1:2379"). When empty, an embedded server is
	// started with DataDir.
	Endpoints []string
	// DataDir is the embedded server's data directory (created if absent).
	DataDir string
	// ClientURL is where the embedded server listens for etcd clients
	// (default "http://127.0.0.1:2379"). Other controllers may use it as
	// their external endpoint.
	ClientURL string
	// PeerURL is the embedded server's peer URL (default
	// "http://127.0.0.1:2380"); only used for its own single-member cluster.
	PeerURL string
	// StartTimeout bounds how long the embedded server may take to become
	// ready, or the first contact with an external cluster (default 60 s).
	StartTimeout time.Duration
	// Log receives the store's messages (default slog.Default()).
	Log *slog.Logger
}

// Store is an open etcd keyspace.
type Store struct {
	// Client is the etcd client, for transactions, ranges and watches.
	Client *clientv3.Client

	etcd      *embed.Etcd
	clientURL string
	log       *slog.Logger
}

// Open starts the embedded etcd server (when cfg.Endpoints is empty) or
// connects to the external cluster, and checks that it answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	base := log
	log = log.With("component", "controller-store")
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	s := &Store{log: log}
	endpoints := cfg.Endpoints
	if len(endpoints) == 0 {
		cfg.Log = base
		e, err := startEmbedded(cfg, timeout)
		if err != nil {
			return nil, err
		}
		s.etcd = e
		s.clientURL = e.Clients[0].Addr().String()
		s.clientURL = "http://" + s.clientURL
		endpoints = []string{s.clientURL}
		log.Info("embedded etcd ready", "data_dir", cfg.DataDir, "client_url", s.clientURL)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: timeout,
		Logger:      newZapLogger(base),
	})
	if err != nil {
		s.closeEmbedded()
		return nil, fmt.Errorf("cannot create an etcd client for %v: %w", endpoints, err)
	}
	s.Client = cli
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cli.Get(cctx, "bagpipe-controller-ping"); err != nil {
		s.Close()
		return nil, fmt.Errorf("etcd at %v does not answer (%w): check --etcd-endpoints and that the cluster is up", endpoints, err)
	}
	return s, nil
}

// startEmbedded starts a single-member etcd server on cfg.DataDir.
func startEmbedded(cfg Config, timeout time.Duration) (*embed.Etcd, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("no etcd data directory: give --data-dir, or --etcd-endpoints for an external cluster")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the etcd data directory: %w", err)
	}
	clientURL := cfg.ClientURL
	if clientURL == "" {
		clientURL = "http://127.0.0.1:2379"
	}
	peerURL := cfg.PeerURL
	if peerURL == "" {
		peerURL = "http://127.0.0.1:2380"
	}
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("bad etcd client URL %q: %w", clientURL, err)
	}
	pu, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("bad etcd peer URL %q: %w", peerURL, err)
	}
	ec := embed.NewConfig()
	ec.Name = "bagpipe-controller"
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{*cu}
	ec.AdvertiseClientUrls = []url.URL{*cu}
	ec.ListenPeerUrls = []url.URL{*pu}
	ec.AdvertisePeerUrls = []url.URL{*pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	// Keep an hour of history: watchers resume from any revision of the
	// last hour; older ones get "compacted" and list again.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(cfg.Log))
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("cannot start the embedded etcd server in %s (is another controller using it, or the ports %s/%s taken?): %w",
			cfg.DataDir, clientURL, peerURL, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd server failed: %w", err)
	case <-time.After(timeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd server in %s not ready after %v", cfg.DataDir, timeout)
	}
}

// ClientURL is the embedded server's client URL ("" with an external
// cluster).
func (s *Store) ClientURL() string { return s.clientURL }

// Err reports a fatal error of the embedded server (nil channel with an
// external cluster, which never fires).
func (s *Store) Err() <-chan error {
	if s.etcd == nil {
		return nil
	}
	return s.etcd.Err()
}

// Close closes the client and stops the embedded server, if any.
func (s *Store) Close() {
	if s.Client != nil {
		s.Client.Close()
	}
	s.closeEmbedded()
}

func (s *Store) closeEmbedded() {
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	}
}
